//! `confronta-bench-hasher FILE REPS [PART_SIZE]`: runs the daemon's `hash::hash_file` on FILE
//! REPS times and prints one JSON line per run: seconds, bytes, MB/s, the hex digest and the
//! number of part digests. PART_SIZE (bytes, default 0 = none) makes it compute the per-part
//! digests too, as the daemon does for files above `multipart_threshold_bytes`.

#[path = "../../../src/hash.rs"]
#[allow(dead_code)]
mod hash;
// hash.rs opens files through media_path's no-follow helpers.
#[path = "../../../src/media_path.rs"]
#[allow(dead_code)]
mod media_path;
// media_path.rs marks a pause point for the crash tests (`quarantine_moved`): nothing here, as
// in the daemon built without the `failpoints` feature.
mod error {
    pub fn pause_point_blocking(_name: &str) {}
}

use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: {} FILE REPS [PART_SIZE]", args[0]);
        std::process::exit(2);
    }
    let path = PathBuf::from(&args[1]);
    let reps: u32 = args[2].parse().expect("REPS is a number");
    let part_size: u64 = args.get(3).map(|s| s.parse().expect("PART_SIZE is a number")).unwrap_or(0);
    for _ in 0..reps {
        let started = Instant::now();
        let hashed = match hash::hash_file(&path, (part_size > 0).then_some(part_size)) {
            Ok(hashed) => hashed,
            Err(e) => {
                eprintln!("hash_file failed: {e}");
                std::process::exit(1);
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let bytes = hashed.identity.size;
        println!(
            "{{\"seconds\": {seconds:.6}, \"bytes\": {bytes}, \"mb_per_s\": {:.1}, \"sha256\": \"{}\", \"parts\": {}}}",
            bytes as f64 / seconds / 1e6,
            hashed.sha256.to_hex(),
            hashed.part_digests.len()
        );
    }
}
