//! In-memory fakes of the two edges, `ObjectStore` and the sales table, with scriptable faults,
//! so that a file's journey (and every restart rule of the journal) can be driven without a
//! server.
//!
//! Compiled into the crate's own unit tests and, with the `fakes` feature, into the library the
//! integration tests link: `Cargo.toml` lists the crate as its own dev-dependency with that
//! feature, so `cargo test` needs no flag and a release build carries none of this. They live in
//! the library rather than in `tests/common/` so that a unit test beside the code it tests can
//! use them too.
//!
//! Each fake answers as the real backend does where the pipeline can tell the difference: the
//! store refuses bytes whose SHA-256 is not the one sent, honours `If-None-Match: *`, and
//! reports the multipart checksum (`<base64>-<parts>`) for an upload in parts; the table applies
//! the same compare-and-sets as `db::Statements` and stamps a row when it is given a new file,
//! as the companion's `save()` stamps `confronta_asignada_en`.
//!
//! `store` holds `FakeStore`, `table` holds `FakeSalesTable`; this module, the faults both script.

mod store;
mod table;

use std::sync::Mutex;

pub use self::store::{FakeStore, StoreOp};
pub use self::table::{DbOp, FakeSalesTable, TableSnapshot};

/// Faults waiting for the calls they fail: the next `times` calls of `op` fail with `kind`.
struct Faults<Op, Kind> {
    pending: Mutex<Vec<Fault<Op, Kind>>>,
}

struct Fault<Op, Kind> {
    op: Op,
    times: u32,
    kind: Kind,
    /// The call takes effect and only its answer is lost (a reply dropped on the way back),
    /// rather than failing before it does anything.
    answer_lost: bool,
}

impl<Op: PartialEq + Copy, Kind: Copy> Faults<Op, Kind> {
    fn new() -> Self {
        Faults { pending: Mutex::new(Vec::new()) }
    }

    fn add(&self, op: Op, times: u32, kind: Kind, answer_lost: bool) {
        lock(&self.pending).push(Fault { op, times, kind, answer_lost });
    }

    /// The fault this call of `op` meets, if one is scripted (and whether only its answer is
    /// lost); it counts one of its calls.
    fn take(&self, op: Op) -> Option<(Kind, bool)> {
        let mut pending = lock(&self.pending);
        let index = pending.iter().position(|fault| fault.op == op && fault.times > 0)?;
        let fault = &mut pending[index];
        fault.times -= 1;
        let taken = (fault.kind, fault.answer_lost);
        if fault.times == 0 {
            pending.remove(index);
        }
        Some(taken)
    }

    /// What a call of `op` meets: `Err` fails it before it does anything, `Ok(Some)` is the
    /// error it ends with once it has taken effect.
    fn meet<E>(&self, op: Op, error: impl FnOnce(Kind) -> E) -> Result<LostAnswer<E>, E> {
        match self.take(op) {
            Some((kind, true)) => Ok(Some(error(kind))),
            Some((kind, false)) => Err(error(kind)),
            None => Ok(None),
        }
    }
}

/// The error a call ends with once it has taken effect, when its answer is to be lost.
type LostAnswer<E> = Option<E>;

fn answer<T, E>(lost: LostAnswer<E>, result: Result<T, E>) -> Result<T, E> {
    match lost {
        Some(error) => Err(error),
        None => result,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
