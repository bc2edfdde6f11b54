//! Every bad input gets a clear answer: each case names the file and the reason, nothing is
//! lost, and the daemon keeps running. Each case also becomes a row of the table that
//! `scripts/hostile-report.sh` writes into docs/hostile-inputs.md.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::cases::Cases;
use crate::common::report::{line_with, Observed, Report};
use crate::common::small_disk::SmallJournalDisk;
use crate::common::*;

const WAIT: Duration = Duration::from_secs(60);

/// Waits until the daemon has logged an outcome for `name` with `reason`, and returns that line.
async fn logged(sidecar: &Sidecar, name: &str, reason: &str) -> String {
    let needle = format!("path=\"confrontas/{name}\"");
    eventually(&format!("{name}: {reason}"), WAIT, || async {
        sidecar
            .log_text()
            .lines()
            .find(|line| line.contains(&needle) && line.contains(reason))
            .map(str::to_owned)
    })
    .await
}

async fn wait_recorded(world: &World, id: i64) -> Row {
    eventually(&format!("venta {id} recorded"), WAIT, || async {
        world.db.row(id).await.filter(|r| r.subido)
    })
    .await
}

async fn wait_gone(path: &Path) {
    eventually(&format!("{} removed", path.display()), WAIT, || async { (!path.exists()).then_some(()) })
        .await;
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Sizes, things that are not regular files, and names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_are_empty_not_regular_or_oddly_named() {
    let mut report = Report::new("1-files-and-names");
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    let dir = world.dir();
    let mut cases = Cases::new();

    cases
        .run("0-byte file", || async {
            // A 0-byte file.
            world.write_in_place("vacio.pdf", b"");
            let empty = world.db.insert_venta("PORTA-EMPTY", Some("confrontas/vacio.pdf")).await;
            let line = logged(&sidecar, "vacio.pdf", "quarantined").await;
            assert!(line.contains("empty file"), "{line}");
            assert!(
                world.quarantined("vacio.pdf").exists() && world.quarantined("vacio.pdf.reason").exists()
            );
            let row = world.db.row(empty).await.unwrap();
            assert_eq!(row.confronta.as_deref(), Some(""), "the row no longer names the refused path");
            assert_eq!(row.sync_error.as_deref(), Some("empty: empty file"), "and says why, code first");
            assert!(!row.subido && row.object_name.is_none());
            report.row(
                "0-byte file",
                "quarantined with reason; the row stops naming the path and says why",
                &Observed::new().upload(&world, "vacio.pdf", empty).await.log(&line),
            );
        })
        .await;

    cases
        .run("symlink to /etc/passwd", || async {
            // A symlink to a file outside the folder, with a row pointing at it.
            std::os::unix::fs::symlink("/etc/passwd", dir.join("enlace_fuera.pdf")).unwrap();
            let link_out = world.db.insert_venta("PORTA-LINK-OUT", Some("confrontas/enlace_fuera.pdf")).await;
            let line = logged(&sidecar, "enlace_fuera.pdf", "not_regular").await;
            assert!(line.contains("not a regular file"), "{line}");
            assert!(std::fs::symlink_metadata(dir.join("enlace_fuera.pdf"))
                .unwrap()
                .file_type()
                .is_symlink());
            report.row(
                "symlink to /etc/passwd",
                "never followed, never uploaded",
                &Observed::new().upload(&world, "enlace_fuera.pdf", link_out).await.log(&line),
            );
        })
        .await;

    cases
        .run("symlink inside the folder", || async {
            // A symlink inside the folder to a file that has its own row.
            let target_bytes = sample_bytes(1, 4_000);
            let target = world.write_in_place("destino.pdf", &target_bytes);
            let target_id = world.db.insert_venta("PORTA-TARGET", Some("confrontas/destino.pdf")).await;
            std::os::unix::fs::symlink(&target, dir.join("enlace_dentro.pdf")).unwrap();
            let link_in = world.db.insert_venta("PORTA-LINK-IN", Some("confrontas/enlace_dentro.pdf")).await;
            let line = logged(&sidecar, "enlace_dentro.pdf", "not_regular").await;
            wait_recorded(&world, target_id).await;
            report.row(
                "symlink inside the folder",
                "the link is not followed; its target moves on its own row",
                &Observed::new()
                    .upload(&world, "enlace_dentro.pdf", link_in)
                    .await
                    .log(&line)
                    .upload(&world, "destino.pdf", target_id)
                    .await,
            );
        })
        .await;

    cases
        .run("hard link", || async {
            // A hard link.
            let linked = sample_bytes(2, 3_000);
            let original = world.temp.path().join("original-of-hard-link.pdf");
            std::fs::write(&original, &linked).unwrap();
            std::fs::hard_link(&original, dir.join("enlace_duro.pdf")).unwrap();
            let hard = world.db.insert_venta("PORTA-HARD", Some("confrontas/enlace_duro.pdf")).await;
            let line = logged(&sidecar, "enlace_duro.pdf", "unscannable").await;
            assert!(line.contains("2 hard links"), "{line}");
            assert!(dir.join("enlace_duro.pdf").exists() && original.exists());
            report.row(
                "hard link",
                "kept with a clear reason",
                &Observed::new()
                    .upload(&world, "enlace_duro.pdf", hard)
                    .await
                    .log(&line)
                    .path("its other name", &original),
            );
        })
        .await;

    cases
        .run("FIFO", || async {
            // A FIFO: opening it must not block the daemon.
            let fifo = dir.join("tuberia.pdf");
            let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
            let fifo_id = world.db.insert_venta("PORTA-FIFO", Some("confrontas/tuberia.pdf")).await;
            let line = logged(&sidecar, "tuberia.pdf", "not_regular").await;
            report.row(
                "FIFO",
                "kept, daemon not blocked",
                &Observed::new().upload(&world, "tuberia.pdf", fifo_id).await.log(&line).daemon(&mut sidecar),
            );
        })
        .await;

    cases
        .run("file in a sub-directory", || async {
            // A sub-directory.
            std::fs::create_dir_all(dir.join("2026/11")).unwrap();
            let nested_bytes = sample_bytes(3, 5_000);
            let nested = world.write_in_place("2026/11/anidado.pdf", &nested_bytes);
            let nested_id =
                world.db.insert_venta("PORTA-NESTED", Some("confrontas/2026/11/anidado.pdf")).await;
            let row = wait_recorded(&world, nested_id).await;
            assert_eq!(world.object_bytes(row.object_name.as_deref().unwrap()).await, nested_bytes);
            wait_gone(&nested).await;
            report.row(
                "file in a sub-directory",
                "moved like any other",
                &Observed::new().upload(&world, "2026/11/anidado.pdf", nested_id).await,
            );
        })
        .await;

    // Names: spaces, ñ, tildes, emoji, a newline, a leading dash.
    let names = [
        ("con espacios y ñandú á é í ó ú ü.pdf", "spaces, ñ and tildes"),
        ("emoji 📄✅.pdf", "emoji"),
        ("salto\nde linea.pdf", "a newline"),
        ("-rf --no-preserve-root.pdf", "a leading dash"),
    ];
    for (index, (name, label)) in names.iter().enumerate() {
        cases
            .run(&format!("name with {label}"), || async {
                let bytes = sample_bytes(10 + index as u64, 2_000 + index);
                let path = world.write_in_place(name, &bytes);
                let id = world
                    .db
                    .insert_venta(&format!("PORTA-NAME{index}"), Some(&format!("confrontas/{name}")))
                    .await;
                let row = wait_recorded(&world, id).await;
                assert_eq!(world.object_bytes(row.object_name.as_deref().unwrap()).await, bytes, "{label}");
                wait_gone(&path).await;
                report.row(
                    &format!("name with {label}"),
                    "moved; object name sanitised",
                    &Observed::new().upload(&world, name, id).await,
                );
            })
            .await;
    }
    cases
        .run("a newline in a name never splits a log line", || async {
            // The path is printed escaped.
            assert!(sidecar.log_text().contains("salto\\nde linea.pdf"), "escaped newline in the log");
            assert!(!sidecar.log_text().lines().any(|l| l.starts_with("de linea.pdf")), "no forged log line");
        })
        .await;

    cases
        .run("name with non-UTF-8 bytes", || async {
            // Non-UTF-8 bytes: no Django row can name it; it is logged and left alone.
            use std::os::unix::ffi::OsStrExt;
            let raw = dir.join(std::ffi::OsStr::from_bytes(b"latin1_\xf1o.pdf"));
            std::fs::write(&raw, sample_bytes(20, 1_000)).unwrap();
            let line = eventually("non-UTF-8 name reported", WAIT, || async {
                sidecar.log_text().lines().find(|line| line.contains("not valid UTF-8")).map(str::to_owned)
            })
            .await;
            assert!(raw.exists());
            report.row(
                "name with non-UTF-8 bytes",
                "left alone, reported",
                &Observed::new().log(&line).path("the file", &raw),
            );
        })
        .await;

    cases
        .run("row path with '..'", || async {
            // A row whose path climbs out of the media root is never followed.
            let outside = world.media_root.join("secreto.pdf");
            std::fs::write(&outside, sample_bytes(21, 1_000)).unwrap();
            let escape = world.db.insert_venta("PORTA-ESCAPE", Some("confrontas/../secreto.pdf")).await;
            tokio::time::sleep(Duration::from_secs(3)).await; // two reconcile passes
            assert!(outside.exists());
            assert!(!world.db.row(escape).await.unwrap().subido);
            report.row(
                "row path with '..' (a name Django never makes)",
                "never followed",
                &Observed::new().path("the file outside the folder", &outside).row(&world, escape).await,
            );
        })
        .await;

    sidecar.assert_running();
    report.row("daemon after all of the above", "still running", &Observed::new().daemon(&mut sidecar));
    world.cleanup().await;
    cases.finish();
}

/// Validation (seed 8.1): types by magic bytes and extension, max_bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_quarantines_what_is_not_an_allowed_document() {
    let mut report = Report::new("2-validation");
    let world = World::new(Backend::Postgres).await;
    let config = world.config().set("validation.max_bytes", 100000).write();
    let mut sidecar = Sidecar::start(&config, &[], &[]);

    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "programa.pdf",
            b"MZ\x90\x00\x03\x00\x00\x00 an executable".to_vec(),
            "quarantined",
            "content is application/vnd.microsoft.portable-executable",
        ),
        ("texto.pdf", b"just some text, no magic".to_vec(), "quarantined", "not a recognised document"),
        ("documento.exe", sample_bytes(30, 2_000), "quarantined", "extension .exe is not in allowed_types"),
        ("enorme.pdf", sample_bytes(31, 100_001), "quarantined", "over max_bytes (100000)"),
    ];
    let mut table = Cases::new();
    for (name, bytes, reason, detail) in &cases {
        table
            .run(&format!("{name}: {detail}"), || async {
                world.write_in_place(name, bytes);
                let id = world.db.insert_venta(&format!("PORTA-V-{name}"), Some(&format!("confrontas/{name}"))).await;
                let line = logged(&sidecar, name, reason).await;
                assert!(line.contains(detail), "{line}");
                assert_eq!(
                    std::fs::read(world.quarantined(name)).unwrap(),
                    *bytes,
                    "{name} kept intact in quarantine"
                );
                let note = std::fs::read_to_string(world.quarantined(&format!("{name}.reason"))).unwrap();
                assert!(note.contains(detail), "{note}");
                let row = world.db.row(id).await.unwrap();
                assert!(!row.subido && row.object_name.is_none(), "nothing recorded: {row:?}");
                assert_eq!(row.confronta.as_deref(), Some(""), "the row no longer names the refused path");
                assert!(row.sync_error.as_deref().is_some_and(|e| e.contains(detail)), "the row says why: {row:?}");
                report.row(
                    &format!("{name}: {detail}"),
                    "quarantined, reason logged and written beside it and in the row, which stops naming the path",
                    &Observed::new().upload(&world, name, id).await.log(&line),
                );
            })
            .await;
    }
    assert!(world.objects_under_prefix().await.is_empty(), "nothing refused was uploaded");
    let under_media_root: Vec<_> = std::fs::read_dir(&world.media_root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(under_media_root, ["confrontas"], "nothing refused stays under MEDIA_ROOT");
    for folder in [world.quarantine_dir(), world.quarantined("")] {
        assert_eq!(mode(&folder), 0o700, "{}", folder.display());
    }
    for file in ["programa.pdf", "programa.pdf.reason"] {
        assert_eq!(mode(&world.quarantined(file)), 0o600, "{file}");
    }
    report.row(
        "where refused files go",
        "outside MEDIA_ROOT (which Django serves), folders 0700, files 0600",
        &Observed::new()
            .count("under MEDIA_ROOT", under_media_root.join(", "))
            .count(
                "quarantine folder",
                format!(
                    "{} (beside the journal), mode {:o}",
                    world.quarantine_dir().display(),
                    mode(&world.quarantine_dir())
                ),
            )
            .count("quarantine/confrontas mode", format!("{:o}", mode(&world.quarantined(""))))
            .count("programa.pdf mode", format!("{:o}", mode(&world.quarantined("programa.pdf"))))
            .count(
                "programa.pdf.reason mode",
                format!("{:o}", mode(&world.quarantined("programa.pdf.reason"))),
            ),
    );

    // Issue 12 item 5: a second refused file under the same name never replaces the first. The
    // agent uploads again for the same venta; Django saves the file, then the row.
    let again = [b"MZ\x90\x00 another executable ".as_slice(), &sample_bytes(33, 2_000)].concat();
    world.write_in_place("programa.pdf", &again);
    world
        .db
        .execute(
            "UPDATE telefonica_ventaportabilidad SET confronta = 'confrontas/programa.pdf' \
             WHERE numero = 'PORTA-V-programa.pdf'",
        )
        .await;
    eventually("programa.pdf quarantined a second time", WAIT, || async {
        world.quarantined("programa.pdf.1").exists().then_some(())
    })
    .await;
    assert_eq!(std::fs::read(world.quarantined("programa.pdf")).unwrap(), cases[0].1, "the first is intact");
    assert_eq!(std::fs::read(world.quarantined("programa.pdf.1")).unwrap(), again);
    let note = std::fs::read_to_string(world.quarantined("programa.pdf.1.reason")).unwrap();
    assert!(note.contains("portable-executable"), "{note}");
    report.row(
        "programa.pdf refused again under the same name",
        "the first quarantined file and note are never overwritten",
        &Observed::new()
            .path("quarantine/confrontas/programa.pdf.1", &world.quarantined("programa.pdf.1"))
            .path("its .reason", &world.quarantined("programa.pdf.1.reason"))
            .count(
                "quarantine/confrontas/programa.pdf holds",
                if std::fs::read(world.quarantined("programa.pdf")).unwrap() == cases[0].1 {
                    "the first file's bytes"
                } else {
                    "OTHER bytes"
                },
            ),
    );

    // A PNG saved with .jpg is still an allowed image.
    let png = [b"\x89PNG\r\n\x1a\n".as_slice(), &random_bytes(32, 3_000)].concat();
    let path = world.write_in_place("foto.jpg", &png);
    let id = world.db.insert_venta("PORTA-PNG", Some("confrontas/foto.jpg")).await;
    wait_recorded(&world, id).await;
    wait_gone(&path).await;
    report.row(
        "PNG content named .jpg",
        "allowed (both are allowed image types)",
        &Observed::new().upload(&world, "foto.jpg", id).await,
    );
    sidecar.assert_running();
    world.cleanup().await;
    table.finish();
}

/// Starts clamd on a private socket with a one-signature database made with sigtool, which
/// matches the EICAR test string anywhere in a file.
struct Clamd {
    child: std::process::Child,
    socket: PathBuf,
}

impl Clamd {
    fn start(dir: &Path) -> Clamd {
        let db = dir.join("clamdb");
        std::fs::create_dir_all(&db).unwrap();
        let hex = std::process::Command::new("sigtool")
            .arg("--hex-dump")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child.stdin.take().unwrap().write_all(EICAR)?;
                child.wait_with_output()
            })
            .expect("sigtool (Debian's clamav package) is installed");
        let hex = String::from_utf8(hex.stdout).unwrap().trim().to_owned();
        std::fs::write(db.join("eicar.ndb"), format!("Eicar-Test-Signature:0:*:{hex}\n")).unwrap();
        let socket = dir.join("clamd.sock");
        let conf = dir.join("clamd.conf");
        std::fs::write(
            &conf,
            format!(
                "LocalSocket {}\nDatabaseDirectory {}\nForeground yes\nLogFile {}\nTemporaryDirectory {}\n",
                socket.display(),
                db.display(),
                dir.join("clamd.log").display(),
                dir.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("clamd")
            .arg("--config-file")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("clamd (Debian's clamav-daemon) is installed");
        Clamd { child, socket }
    }

    async fn ready(&self) {
        eventually("clamd listening", WAIT, || async {
            std::os::unix::net::UnixStream::connect(&self.socket).ok().map(|_| ())
        })
        .await;
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// Virus scan (seed 8.1) through a real clamd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clamd_quarantines_infected_files_and_nothing_goes_up_unscanned() {
    let mut report = Report::new("3-virus-scan");
    let world = World::new(Backend::Postgres).await;
    let clamd_dir = world.temp.path().join("clamd");
    std::fs::create_dir_all(&clamd_dir).unwrap();
    let socket = clamd_dir.join("clamd.sock");
    let config = world.config().set("validation.clamd_socket", socket.display().to_string()).write();
    let mut sidecar = Sidecar::start(&config, &[], &[]);

    // clamd is not running yet: the file waits and is not uploaded.
    let clean = sample_bytes(40, 6_000);
    let clean_path = world.write_in_place("limpio.pdf", &clean);
    let clean_id = world.db.insert_venta("PORTA-CLEAN", Some("confrontas/limpio.pdf")).await;
    let line = logged(&sidecar, "limpio.pdf", "clamd unreachable").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(clean_path.exists() && world.objects_under_prefix().await.is_empty());
    report.row(
        "clamd unreachable",
        "file waits, nothing uploaded unscanned",
        &Observed::new().upload(&world, "limpio.pdf", clean_id).await.log(&line),
    );

    let clamd = Clamd::start(&clamd_dir);
    clamd.ready().await;
    wait_recorded(&world, clean_id).await;
    wait_gone(&clean_path).await;
    report.row(
        "clamd back, clean file",
        "scanned, then moved",
        &Observed::new().upload(&world, "limpio.pdf", clean_id).await,
    );

    let infected = [b"%PDF-1.4\n".as_slice(), EICAR, b"\n%%EOF\n"].concat();
    world.write_in_place("infectado.pdf", &infected);
    let infected_id = world.db.insert_venta("PORTA-EICAR", Some("confrontas/infectado.pdf")).await;
    let line = logged(&sidecar, "infectado.pdf", "quarantined").await;
    assert!(line.contains("clamd found Eicar-Test-Signature"), "{line}");
    assert!(world.quarantined("infectado.pdf").exists());
    let row = world.db.row(infected_id).await.unwrap();
    assert!(!row.subido && row.confronta.as_deref() == Some(""), "{row:?}");
    assert!(row.sync_error.as_deref().is_some_and(|e| e.contains("Eicar")), "{row:?}");
    assert_eq!(world.objects_under_prefix().await.len(), 1, "only the clean file is in the bucket");
    report.row(
        "EICAR inside a PDF",
        "quarantined, never uploaded",
        &Observed::new().upload(&world, "infectado.pdf", infected_id).await.log(&line),
    );
    sidecar.assert_running();
    drop(clamd);
    world.cleanup().await;
}

/// Files and rows that change while the daemon works on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_rows_that_change_under_the_daemon() {
    let mut report = Report::new("4-moving-targets");
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    // Long pauses before the upload and before the record leave room to change things.
    let mut sidecar = Sidecar::start(
        &config,
        &[],
        &[("FAILPOINTS", "before_upload=return(4000);before_record=return(4000)")],
    );
    sidecar.wait_watching().await;

    // Deleted before processing: the row points at nothing, the daemon shrugs.
    let gone = world.write_in_place("borrado.pdf", &sample_bytes(50, 2_000));
    let gone_id = world.db.insert_venta("PORTA-GONE", Some("confrontas/borrado.pdf")).await;
    std::fs::remove_file(&gone).unwrap();

    // Rewritten during the upload window: the object must hold the new bytes.
    let first = sample_bytes(51, 30_000);
    let second = sample_bytes(52, 31_000);
    let rewrite = world.write_in_place("reescrito.pdf", &first);
    let rewrite_id = world.db.insert_venta("PORTA-REWRITE", Some("confrontas/reescrito.pdf")).await;

    // Appended after close, also inside the window.
    let start = sample_bytes(53, 20_000);
    let tail = random_bytes(54, 5_000);
    let append = world.write_in_place("anexado.pdf", &start);
    let append_id = world.db.insert_venta("PORTA-APPEND", Some("confrontas/anexado.pdf")).await;

    // The confronta replaced while the file is between verify and record.
    let replaced_bytes = sample_bytes(55, 12_000);
    let replaced = world.write_in_place("reemplazado.pdf", &replaced_bytes);
    let replaced_id = world.db.insert_venta("PORTA-REPL", Some("confrontas/reemplazado.pdf")).await;

    // The same content for two ventas.
    let twin = sample_bytes(56, 9_000);
    let twin_a_path = world.write_in_place("gemelo_a.pdf", &twin);
    let twin_a = world.db.insert_venta("PORTA-TWIN-A", Some("confrontas/gemelo_a.pdf")).await;
    let twin_b_path = world.write_in_place("gemelo_b.pdf", &twin);
    let twin_b = world.db.insert_venta("PORTA-TWIN-B", Some("confrontas/gemelo_b.pdf")).await;

    // Inside the before_upload pause: rewrite and append.
    // Each change lands right after that file's own pause begins, well inside its window,
    // whichever file the daemon reaches first.
    let (mut rewritten, mut appended) = (false, false);
    eventually("both files changed inside their upload windows", WAIT, || {
        let log = sidecar.log_text();
        let paused = |name: &str| {
            log.lines().any(|l| {
                l.contains(&format!("path=\"confrontas/{name}\""))
                    && l.contains("failpoint=\"before_upload\"")
            })
        };
        if !rewritten && paused("reescrito.pdf") {
            std::fs::write(&rewrite, &second).unwrap();
            rewritten = true;
        }
        if !appended && paused("anexado.pdf") {
            std::fs::OpenOptions::new().append(true).open(&append).unwrap().write_all(&tail).unwrap();
            appended = true;
        }
        let done = rewritten && appended;
        async move { done.then_some(()) }
    })
    .await;
    let full = [start.clone(), tail.clone()].concat();

    // Inside the before_record pause of reemplazado.pdf: point the row elsewhere.
    logged(&sidecar, "reemplazado.pdf", "failpoint=\"before_record\"").await;
    world
        .db
        .execute(&format!("UPDATE telefonica_ventaportabilidad SET confronta = 'confrontas/otro.pdf' WHERE id = {replaced_id}"))
        .await;

    // Each outcome is checked on its own: one that fails is reported, the rest still run.
    let mut cases = Cases::new();
    cases
        .run("rewritten during upload", || async {
            let row = wait_recorded(&world, rewrite_id).await;
            assert_eq!(world.object_bytes(row.object_name.as_deref().unwrap()).await, second);
            assert_eq!(row.sha256.as_deref(), Some(sha256_hex(&second).as_str()));
            wait_gone(&rewrite).await;
            report.row(
                "rewritten during upload",
                "the new content is uploaded and recorded",
                &Observed::new()
                    .upload(&world, "reescrito.pdf", rewrite_id)
                    .await
                    .count("SHA-256 of the rewritten bytes", &sha256_hex(&second)[..12]),
            );
        })
        .await;
    cases
        .run("appended after close", || async {
            let row = wait_recorded(&world, append_id).await;
            let stored = world.object_bytes(row.object_name.as_deref().unwrap()).await;
            assert_eq!(stored, full);
            report.row(
                "appended after close",
                "the whole file is uploaded",
                &Observed::new()
                    .upload(&world, "anexado.pdf", append_id)
                    .await
                    .count("object bytes", stored.len())
                    .count("bytes written then appended", format!("{} + {}", start.len(), tail.len())),
            );
        })
        .await;
    cases
        .run("confronta replaced mid-flight", || async {
            let line = logged(&sidecar, "reemplazado.pdf", "row_changed").await;
            assert!(line.contains("left for the orphan report"), "{line}");
            assert_eq!(std::fs::read(&replaced).unwrap(), replaced_bytes, "file kept");
            assert_eq!(
                world.db.row(replaced_id).await.unwrap().confronta.as_deref(),
                Some("confrontas/otro.pdf")
            );
            report.row(
                "confronta replaced mid-flight",
                "file kept, row not overwritten, object left for the orphan report",
                &Observed::new().upload(&world, "reemplazado.pdf", replaced_id).await.log(&line),
            );
        })
        .await;
    cases
        .run("same content in two ventas", || async {
            let a = wait_recorded(&world, twin_a).await;
            let b = wait_recorded(&world, twin_b).await;
            assert_ne!(a.object_name, b.object_name);
            assert_eq!(a.sha256, b.sha256);
            wait_gone(&twin_a_path).await;
            wait_gone(&twin_b_path).await;
            report.row(
                "same content in two ventas",
                "two objects, two rows, both files removed",
                &Observed::new()
                    .upload(&world, "gemelo_a.pdf", twin_a)
                    .await
                    .upload(&world, "gemelo_b.pdf", twin_b)
                    .await,
            );
        })
        .await;
    cases
        .run("deleted before processing", || async {
            assert!(!world.db.row(gone_id).await.unwrap().subido);
            report.row(
                "deleted before processing",
                "nothing happens; the row is untouched",
                &Observed::new().upload(&world, "borrado.pdf", gone_id).await.daemon(&mut sidecar),
            );
        })
        .await;
    sidecar.assert_running();
    world.cleanup().await;
    cases.finish();
}

/// A daemon running as an unprivileged user meets a file it cannot read, which later becomes
/// readable (root reads anything, so this needs another uid).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_file_waits_and_moves_once_readable() {
    let mut report = Report::new("5-unreadable");
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    // The config and the secret key are 0600, as the daemon wants them: hand them to its user.
    for path in [config.clone(), world.temp.path().join("minio-secret")] {
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    }
    for path in [world.temp.path(), &world.media_root, &world.dir()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let state = world.journal_path().parent().unwrap().to_owned();
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut sidecar = Sidecar::start_as(&config, 65534, &[]);

    let bytes = sample_bytes(60, 4_000);
    let path = world.write_in_place("sin_permiso.pdf", &bytes);
    let id = world.db.insert_venta("PORTA-000", Some("confrontas/sin_permiso.pdf")).await;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let line = logged(&sidecar, "sin_permiso.pdf", "Permission denied").await;
    assert!(line.contains("will retry") || line.contains("validation_pending"), "{line}");
    assert!(path.exists());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    wait_recorded(&world, id).await;
    wait_gone(&path).await;
    report.row(
        "unreadable (mode 000), then readable",
        "waits without losing it, then moves",
        &Observed::new().log(&line).upload(&world, "sin_permiso.pdf", id).await,
    );
    sidecar.assert_running();
    world.cleanup().await;
}

/// The journal: disk full, deleted, corrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_full_deleted_or_corrupt_loses_nothing() {
    let mut report = Report::new("6-journal");
    let world = World::new(Backend::Postgres).await;
    // The journal lives on a 2 MiB tmpfs that we can fill.
    let disk = SmallJournalDisk::mount(&world);
    let state = world.journal_path().parent().unwrap().to_owned();
    let config = world.config().write();
    let mut sidecar = Sidecar::start(&config, &[], &[]);

    let first = sample_bytes(70, 3_000);
    let first_path = world.write_in_place("antes.pdf", &first);
    let first_id = world.db.insert_venta("PORTA-J1", Some("confrontas/antes.pdf")).await;
    wait_recorded(&world, first_id).await;
    wait_gone(&first_path).await;

    // Fill the disk (`SmallJournalDisk::fill` says how no write can land), then give the
    // daemon work.
    let reader = disk.fill();
    let mut waiting = Vec::new();
    for index in 0..5 {
        let name = format!("lleno_{index}.pdf");
        let bytes = sample_bytes(71 + index, 3_000);
        let path = world.write_in_place(&name, &bytes);
        let id =
            world.db.insert_venta(&format!("PORTA-FULL{index}"), Some(&format!("confrontas/{name}"))).await;
        waiting.push((id, path, bytes));
    }
    eventually("loud journal error", WAIT, || async {
        sidecar.log_text().contains("the journal cannot be written (disk full?)").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut recorded_while_full = 0;
    for (id, path, bytes) in &waiting {
        assert_eq!(std::fs::read(path).unwrap(), *bytes, "nothing deleted while the journal is full");
        let subido = world.db.row(*id).await.unwrap().subido;
        assert!(!subido, "nothing recorded without the journal");
        recorded_while_full += usize::from(subido);
    }
    let error_lines = sidecar.log_text().matches("the journal cannot be written").count();
    assert_eq!(error_lines, 1, "one loud line, not one per file");
    report.row(
        "journal disk full (ENOSPC)",
        "stop taking files, one loud error, nothing deleted",
        &Observed::new()
            .log(line_with(&sidecar.log_text(), "the journal cannot be written"))
            .count("such lines", error_lines)
            .count(
                "waiting files still on disk",
                format!(
                    "{} of {}",
                    waiting.iter().filter(|(_, path, _)| path.exists()).count(),
                    waiting.len()
                ),
            )
            .count("their rows recorded", recorded_while_full),
    );

    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    std::fs::remove_file(disk.filler()).unwrap();
    for (id, path, _) in &waiting {
        wait_recorded(&world, *id).await;
        wait_gone(path).await;
    }
    assert!(sidecar.log_text().contains("the journal is writable again"));
    let mut freed = Observed::new()
        .log(line_with(&sidecar.log_text(), "the journal is writable again"))
        .count("such lines", sidecar.log_text().matches("the journal is writable again").count());
    for (id, path, _) in &waiting {
        let name = path.file_name().unwrap().to_str().unwrap();
        freed = freed.upload(&world, name, *id).await;
    }
    report.row("journal disk freed", "resumes by itself", &freed);
    sidecar.kill9();

    // Deleted journal: the world is the truth.
    let objects_before = world.objects_under_prefix().await.len();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", world.journal_path().display()));
    }
    let later = sample_bytes(80, 3_000);
    let later_path = world.write_in_place("despues.pdf", &later);
    let later_id = world.db.insert_venta("PORTA-J2", Some("confrontas/despues.pdf")).await;
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    wait_recorded(&world, later_id).await;
    wait_gone(&later_path).await;
    assert_eq!(world.objects_under_prefix().await.len(), objects_before + 1, "nothing re-uploaded");
    report.row(
        "journal deleted",
        "rebuilt from the world; re-work, never a lost file",
        &Observed::new()
            .upload(&world, "despues.pdf", later_id)
            .await
            .count("objects before the restart", objects_before)
            .count("after", world.objects_under_prefix().await.len()),
    );
    sidecar.kill9();

    // Corrupt journal: moved aside with its -wal and -shm (issue 12 item 6), rebuilt.
    std::fs::write(world.journal_path(), b"garbage garbage garbage garbage garbage garbage garbage").unwrap();
    std::fs::write(format!("{}-wal", world.journal_path().display()), b"the corrupt journal's wal").unwrap();
    let third = sample_bytes(81, 3_000);
    let third_path = world.write_in_place("corrupto.pdf", &third);
    let third_id = world.db.insert_venta("PORTA-J3", Some("confrontas/corrupto.pdf")).await;
    let sidecar = Sidecar::start(&config, &[], &[]);
    wait_recorded(&world, third_id).await;
    wait_gone(&third_path).await;
    assert!(sidecar.log_text().contains("journal corrupt; moved aside"));
    let aside: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".corrupt-"))
        .collect();
    let wal = aside.iter().find(|name| name.ends_with("-wal")).unwrap_or_else(|| panic!("{aside:?}"));
    assert_eq!(std::fs::read(state.join(wal)).unwrap(), b"the corrupt journal's wal");
    assert!(aside.iter().any(|name| name.ends_with("-shm")), "{aside:?}");
    report.row(
        "journal corrupted",
        "moved aside with its -wal and -shm, rebuilt, work continues",
        &Observed::new()
            .log(line_with(&sidecar.log_text(), "journal corrupt; moved aside"))
            .count("set aside", aside.join(", "))
            .upload(&world, "corrupto.pdf", third_id)
            .await,
    );
    drop(sidecar);
    world.cleanup().await;
}

/// Start-up checks and the limits of the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_errors_name_the_problem_and_exit_with_its_code() {
    let mut report = Report::new("7-start-up-and-limits");
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();
    let secret = s3_env().secret_key;
    let mut all_output = String::new();

    let cases: Vec<(&str, TestConfig, i32, &str)> = vec![
        (
            "wrong S3 credentials",
            world.config().set("minio.access_key", "GK00000000000000000000dead"),
            4,
            "credentials refused",
        ),
        ("missing bucket", world.config().set("minio.bucket", "no-existe-este-bucket"), 4, "bucket missing"),
        (
            "wrong database user and password",
            world.config().set(
                "database.url",
                world.db.url().replace("postgres://root@", "postgres://nadie:s3cr3tpw@"),
            ),
            3,
            "role \"nadie\" does not exist",
        ),
    ];
    let mut table = Cases::new();
    for (case, case_config, code, message) in cases {
        table
            .run(case, || async {
                case_config.write();
                let (got, stdout, stderr) = Sidecar::run(&config, &[]);
                all_output.push_str(&stdout);
                all_output.push_str(&stderr);
                assert_eq!(got, code, "{case}: {stderr}");
                assert!(stderr.contains(message), "{case}: {stderr}");
                report.row(
                    case,
                    &format!("clear error, exit code {code}"),
                    &Observed::new().exit(got, line_with(&stderr, message)),
                );
            })
            .await;
    }
    table.finish();
    world.config().write();
    world.db.execute("ALTER TABLE telefonica_ventaportabilidad DROP COLUMN confronta_minio_url").await;
    let (got, _, stderr) = Sidecar::run(&config, &[]);
    assert_eq!(got, 3, "{stderr}");
    assert!(stderr.contains("missing column confronta_minio_url"), "{stderr}");
    report.row(
        "missing column",
        "names the column, exit code 3",
        &Observed::new().exit(got, line_with(&stderr, "missing column")),
    );
    world
        .db
        .execute("ALTER TABLE telefonica_ventaportabilidad ADD COLUMN confronta_minio_url varchar(200) NULL")
        .await;

    // Files others can write are refused.
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (got, _, stderr) = Sidecar::run(&config, &["check"]);
    assert_eq!(got, 2, "{stderr}");
    assert!(stderr.contains("lets group or others write it"), "{stderr}");
    let writable = Observed::new().exit(got, line_with(&stderr, "lets group or others write it"));
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let secret_file = world.temp.path().join("minio-secret");
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o646)).unwrap();
    let (got, _, stderr) = Sidecar::run(&config, &["check"]);
    assert_eq!(got, 2, "{stderr}");
    assert!(stderr.contains("minio-secret") && stderr.contains("lets group or others write it"), "{stderr}");
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    report.row(
        "config or secret file writable by others",
        "refuses to start, exit code 2",
        &writable.exit(got, line_with(&stderr, "lets group or others write it")),
    );

    // An object URL longer than the varchar(200) column.
    let long_base = format!("http://{}.example.invalid", "x".repeat(150));
    let config = world.config().set("minio.public_base_url", long_base).write();
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    let path = world.write_in_place("url_larga.pdf", &sample_bytes(90, 2_000));
    let id = world.db.insert_venta("PORTA-LONG-URL", Some("confrontas/url_larga.pdf")).await;
    let line = logged(&sidecar, "url_larga.pdf", "url_too_long").await;
    assert!(line.contains("longer than the 200 the URL column holds"), "{line}");
    assert!(path.exists() && !world.db.row(id).await.unwrap().subido);
    report.row(
        "object URL longer than varchar(200)",
        "clear error, file kept",
        &Observed::new().upload(&world, "url_larga.pdf", id).await.log(&line),
    );
    sidecar.assert_running();
    all_output.push_str(&sidecar.log_text());

    // Once the setting is fixed, a restart tries the kept file again.
    sidecar.terminate();
    let config = world.config().write();
    let _sidecar = Sidecar::start(&config, &[], &[]);
    wait_recorded(&world, id).await;
    wait_gone(&path).await;
    report.row(
        "kept file after the cause is fixed",
        "a restart tries it once more",
        &Observed::new().upload(&world, "url_larga.pdf", id).await,
    );

    assert!(!all_output.contains(&secret), "the S3 secret key never reaches the output");
    assert!(!all_output.contains("s3cr3tpw"), "the database password never reaches the output");
    report.row(
        "secrets in logs and errors",
        "never shown",
        &Observed::new()
            .count("bytes of output read", all_output.len())
            .count("times the S3 secret appears", all_output.matches(&secret).count())
            .count("times the DB password appears", all_output.matches("s3cr3tpw").count()),
    );
    world.cleanup().await;
}

/// A 2 GiB file goes up in parts with memory bounded by the part size, not the file size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_gib_file_moves_with_bounded_memory() {
    let mut report = Report::new("8-large-file");
    let world = World::new(Backend::Postgres).await;
    let config = world
        .config()
        .set("validation.max_bytes", 0)
        .set("minio.multipart_threshold_bytes", 16777216)
        .set("minio.part_size_bytes", 16777216)
        .write();
    let size: u64 = 2 * 1024 * 1024 * 1024;
    let id = world.db.insert_venta("PORTA-2GIB", Some("confrontas/grande.pdf")).await;
    // Sparse: a PDF header, a hole, and a tail.
    let temp_path = world.temp.path().join("grande.part");
    {
        let mut file = std::fs::File::create(&temp_path).unwrap();
        file.write_all(b"%PDF-1.7\n").unwrap();
        file.set_len(size - 6).unwrap();
        use std::io::Seek;
        file.seek(std::io::SeekFrom::End(0)).unwrap();
        file.write_all(b"%%EOF\n").unwrap();
    }
    let expected_sha = confronta_sync::hash::hash_file(&temp_path, None).unwrap().sha256.to_hex();
    let path = world.dir().join("grande.pdf");
    std::fs::rename(&temp_path, &path).unwrap();
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    let pid = sidecar.child.id();
    let mut peak_kb = 0u64;
    let row = eventually("2 GiB file recorded", Duration::from_secs(600), || {
        if let Some(kb) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()))
        {
            peak_kb = peak_kb.max(kb);
        }
        let world = &world;
        async move { world.db.row(id).await.filter(|r| r.subido) }
    })
    .await;
    assert_eq!(row.sha256.as_deref(), Some(expected_sha.as_str()));
    wait_gone(&path).await;
    sidecar.assert_running();
    assert!(peak_kb < 256 * 1024, "peak RSS {peak_kb} kB for a 2 GiB file");
    report.row(
        "2 GiB file (sparse)",
        "moved in parts, peak RSS bounded",
        &Observed::new()
            .upload(&world, "grande.pdf", id)
            .await
            .count("SHA-256 of the file", &expected_sha[..12])
            .count("peak RSS (VmHWM)", format!("{} MiB", peak_kb / 1024)),
    );
    world.cleanup().await;
}

/// Issue 12, item 7: a symlinked folder inside `confrontas/` is never followed, by the watcher,
/// the walk or the open, so no file outside the folder is read, uploaded, quarantined or
/// unlinked through it, and the daemon names the path and the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_folder_is_never_followed() {
    let mut report = Report::new("9-symlinked-folders");
    let world = World::new(Backend::Postgres).await;
    let config = world.config().write();

    // Outside the media root: a valid document, and one that validation would quarantine.
    let outside = world.temp.path().join("fuera");
    std::fs::create_dir_all(&outside).unwrap();
    let document = sample_bytes(90, 3_000);
    let refusable = random_bytes(91, 2_000);
    std::fs::write(outside.join("doc.pdf"), &document).unwrap();
    std::fs::write(outside.join("malo.pdf"), &refusable).unwrap();
    std::os::unix::fs::symlink(&outside, world.dir().join("evil")).unwrap();
    let cases = [
        ("evil/doc.pdf", document.clone(), "a valid PDF", "upload and unlink"),
        ("evil/malo.pdf", refusable.clone(), "content validation refuses", "quarantine (a rename)"),
    ];
    let mut ids = Vec::new();
    for (index, (name, ..)) in cases.iter().enumerate() {
        let confronta = format!("confrontas/{name}");
        ids.push(world.db.insert_venta(&format!("PORTA-SYMDIR-{index}"), Some(&confronta)).await);
    }
    // A plain file beside the link proves the daemon got as far as moving files.
    world.write_in_place("normal.pdf", &sample_bytes(92, 2_500));
    let control_id = world.db.insert_venta("PORTA-SYMDIR-CONTROL", Some("confrontas/normal.pdf")).await;

    // Each case ends either in the refusal or, on a daemon that follows the link, in the row
    // recorded or the file quarantined: wait for whichever comes first, then check which.
    let untouched = |name: &str, bytes: &[u8]| {
        let file = outside.join(name.trim_start_matches("evil/"));
        assert_eq!(
            std::fs::read(&file).ok().as_deref(),
            Some(bytes),
            "{} changed or removed",
            file.display()
        );
    };
    let mut sidecar = Sidecar::start(&config, &[], &[]);
    wait_recorded(&world, control_id).await;
    for ((name, bytes, what, danger), id) in cases.iter().zip(&ids) {
        let needle = format!("path=\"confrontas/{name}\"");
        let line = eventually(&format!("{name}: an answer"), WAIT, || async {
            let answers = ["symlinked_folder", "quarantined", "moved to object store"];
            sidecar
                .log_text()
                .lines()
                .find(|line| line.contains(&needle) && answers.iter().any(|answer| line.contains(answer)))
                .map(str::to_owned)
        })
        .await;
        let row = world.db.row(*id).await.unwrap();
        assert!(!row.subido && row.object_name.is_none(), "{name}: the daemon followed the link: {row:?}");
        assert_eq!(row.confronta.as_deref(), Some(format!("confrontas/{name}").as_str()));
        untouched(name, bytes);
        assert!(line.contains("symlinked_folder") && line.contains(&outside_shown(&world, name)), "{line}");
        report.row(
            &format!("confrontas/evil -> a folder outside; {what} (daemon)"),
            &format!("never followed: no {danger} outside the folder"),
            &Observed::new()
                .log(&line)
                .path("the file outside", &outside.join(name.trim_start_matches("evil/")))
                .row(&world, *id)
                .await
                .object(&world, *id)
                .await,
        );
    }
    assert_eq!(world.objects_under_prefix().await.len(), 1, "only the control file is in the bucket");
    sidecar.assert_running();
    report.row("daemon after the symlinked folder", "still running", &Observed::new().daemon(&mut sidecar));
    assert_eq!(sidecar.terminate(), Some(0));

    let (code, stdout, _) = Sidecar::run(&config, &["--rescan", "--dry-run"]);
    assert_eq!(code, 0, "{stdout}");
    let mut dry_run = Observed::new().count("exit", code);
    for (name, ..) in &cases {
        let line = stdout.lines().find(|l| l.starts_with(&format!("confrontas/{name} "))).unwrap_or_default();
        assert!(line.contains("would skip") && line.contains("symlinked folder"), "{name}: {stdout}");
        dry_run = dry_run.output(line);
    }
    report.row("the same, --rescan --dry-run", "would skip, naming the reason", &dry_run);

    let (code, stdout, stderr) = Sidecar::run(&config, &["--rescan"]);
    assert_eq!(code, 1, "kept files fail the rescan: {stdout}{stderr}");
    let mut rescan = Observed::new().count("exit", code);
    for ((name, bytes, ..), id) in cases.iter().zip(&ids) {
        let problem = format!("  confrontas/{name}: symlinked_folder: ");
        assert!(stdout.contains(&problem), "{name}: {stdout}");
        assert!(!world.db.row(*id).await.unwrap().subido);
        untouched(name, bytes);
        rescan = rescan
            .output(line_with(&stdout, &problem))
            .path("the file outside", &outside.join(name.trim_start_matches("evil/")))
            .row(&world, *id)
            .await;
    }
    assert_eq!(world.objects_under_prefix().await.len(), 1);
    report.row("the same, --rescan", "never followed; reported as failed", &rescan);
    world.cleanup().await;
}

/// How the daemon names a file reached through `confrontas/evil` in its messages.
fn outside_shown(world: &World, name: &str) -> String {
    world.dir().join(name).display().to_string()
}
