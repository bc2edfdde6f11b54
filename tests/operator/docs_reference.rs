//! The docs an operator follows match the code and the package (issue 25 item 3): every
//! generated region of the committed docs (`<!-- generated: NAME -->` … `<!-- end generated -->`)
//! is exactly what `confronta_sync::reference::render` makes from the code today, every table is
//! committed somewhere, and every relative link of the docs leads to a file and a section that
//! exist, both in the repository and where the package installs the docs.
//!
//! After changing a config key, an exit code, a reason or a metric, regenerate the regions with
//! `CONFRONTA_REGENERATE_DOCS=1 cargo test --test operator docs_reference` and commit the docs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use confronta_sync::reference::{render, Section};

use crate::common::anchor;

const END: &str = "<!-- end generated -->";
const REGENERATE: &str = "CONFRONTA_REGENERATE_DOCS=1 cargo test --test operator docs_reference";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page of docs/, relative to the repository.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md")];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .map(|path| path.strip_prefix(repo()).unwrap().to_owned())
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

/// `text` with every generated region replaced by what the code renders now, and the sections
/// found; an unknown name or a region without its end marker is a panic naming the file.
fn regenerated(file: &Path, text: &str) -> (String, Vec<Section>) {
    let mut out = String::with_capacity(text.len());
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<!-- generated: ") {
        let after_marker = &rest[start..];
        let line_end =
            after_marker.find('\n').unwrap_or_else(|| panic!("{}: marker at end of file", file.display()));
        let marker = &after_marker[..line_end];
        let name = marker
            .strip_prefix("<!-- generated: ")
            .and_then(|m| m.strip_suffix(" -->"))
            .unwrap_or_else(|| panic!("{}: malformed marker {marker:?}", file.display()));
        let section = Section::parse(name)
            .unwrap_or_else(|| panic!("{}: no generated section is named {name:?}", file.display()));
        let body = &after_marker[line_end + 1..];
        let end = body.find(END).unwrap_or_else(|| panic!("{}: {marker} has no {END}", file.display()));
        out.push_str(&rest[..start]);
        out.push_str(marker);
        out.push('\n');
        out.push_str(&render(section));
        out.push_str(END);
        found.push(section);
        rest = &body[end + END.len()..];
    }
    out.push_str(rest);
    (out, found)
}

/// Issue 25 item 3: the config keys, exit codes, reasons and metrics tables in the docs are
/// what the code says, and each is in the docs. With `CONFRONTA_REGENERATE_DOCS=1` the regions
/// are rewritten instead (the test then checks what it wrote).
#[test]
fn the_generated_tables_in_the_docs_match_the_code() {
    let regenerate = std::env::var_os("CONFRONTA_REGENERATE_DOCS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    let mut committed = BTreeSet::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(repo().join(&file)).unwrap();
        let (fresh, found) = regenerated(&file, &text);
        committed.extend(found.iter().map(|section| section.name()));
        if fresh != text {
            if regenerate {
                std::fs::write(repo().join(&file), &fresh).unwrap();
            } else {
                let line = text.lines().zip(fresh.lines()).position(|(a, b)| a != b).map_or(0, |i| i + 1);
                stale.push(format!("{} (first difference at line {line})", file.display()));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "generated tables differ from the code in {stale:?}: do not edit them by hand; run `{REGENERATE}` and commit the docs"
    );
    let missing: Vec<&str> =
        Section::ALL.iter().map(|s| s.name()).filter(|name| !committed.contains(name)).collect();
    assert!(missing.is_empty(), "no doc carries the generated tables {missing:?}");
}

/// The lines of a Markdown text outside its fenced code blocks.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|line| {
            if line.starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// The anchors of a Markdown text's headings.
fn anchors(text: &str) -> BTreeSet<String> {
    prose_lines(text)
        .into_iter()
        .filter(|line| line.starts_with('#'))
        .map(|line| anchor(line.trim_start_matches('#')))
        .collect()
}

/// The relative link targets of a Markdown text: `[text](target)` without a scheme, outside
/// code blocks and code spans (which hold example text, not links).
fn relative_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    for line in prose_lines(text) {
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let tail = &rest[at + 2..];
            let Some(end) = tail.find(')') else { break };
            let target = &tail[..end];
            if !target.contains("://") && !target.starts_with("mailto:") {
                links.push(target.to_owned());
            }
            rest = &tail[end..];
        }
    }
    links
}

/// `base`'s folder joined with `target`, `..` resolved; `None` when it climbs out of the root.
fn resolve(base: &Path, target: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in base.parent().unwrap_or(Path::new("")).join(target).components() {
        match part {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

/// Every file the package installs under /usr/share/doc/confronta-sync/, by its path there,
/// with the repository file it is made from (`[package.metadata.deb] assets`, globs expanded).
fn installed_docs() -> BTreeMap<PathBuf, PathBuf> {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo().join("Cargo.toml")).unwrap()).unwrap();
    let assets = manifest["package"]["metadata"]["deb"]["assets"].as_array().unwrap();
    let mut installed = BTreeMap::new();
    for asset in assets {
        let (source, dest) = (asset[0].as_str().unwrap(), asset[1].as_str().unwrap());
        let Some(dest) = dest.strip_prefix("usr/share/doc/confronta-sync/") else { continue };
        let sources: Vec<PathBuf> = match source.split_once("/*") {
            Some((folder, suffix)) => {
                let suffix = suffix.to_owned();
                let mut found: Vec<PathBuf> = std::fs::read_dir(repo().join(folder))
                    .unwrap()
                    .map(|entry| entry.unwrap().path())
                    .filter(|path| path.to_string_lossy().ends_with(&suffix))
                    .map(|path| path.strip_prefix(repo()).unwrap().to_owned())
                    .collect();
                found.sort();
                found
            }
            None => vec![PathBuf::from(source)],
        };
        for source in sources {
            let target = if dest.ends_with('/') || dest.is_empty() {
                Path::new(dest).join(source.file_name().unwrap())
            } else {
                PathBuf::from(dest)
            };
            installed.insert(target, source);
        }
    }
    installed
}

/// Checks each relative link of the Markdown files in `files` (path as the reader finds it →
/// repository file) that `checked` picks against the whole set: the file is there, and so is
/// the section a `#fragment` names.
fn check_links(files: &BTreeMap<PathBuf, PathBuf>, checked: impl Fn(&Path) -> bool, where_: &str) {
    let mut broken = Vec::new();
    let text_of = |source: &Path| std::fs::read_to_string(repo().join(source)).unwrap();
    let pages = files.iter().filter(|(path, _)| path.extension().is_some_and(|e| e == "md") && checked(path));
    for (path, source) in pages {
        for link in relative_links(&text_of(source)) {
            let (file, fragment) = link.split_once('#').map_or((link.as_str(), None), |(f, a)| (f, Some(a)));
            let target = if file.is_empty() { Some(path.clone()) } else { resolve(path, file) };
            let Some(target) = target else {
                broken.push(format!("{}: {link} climbs out of the docs", path.display()));
                continue;
            };
            let target_source = files.get(&target).or_else(|| files.get(&target.join("README.md")));
            let is_folder = files.keys().any(|known| known.starts_with(&target) && known != &target);
            match (target_source, fragment) {
                (Some(target_source), Some(fragment)) => {
                    if !anchors(&text_of(target_source)).contains(fragment) {
                        broken.push(format!("{}: {link}: no section #{fragment}", path.display()));
                    }
                }
                (Some(_), None) => {}
                (None, None) if is_folder => {}
                (None, _) => broken.push(format!("{}: {link}: no such file", path.display())),
            }
        }
    }
    assert!(broken.is_empty(), "broken links {where_}:\n{}", broken.join("\n"));
}

/// Every relative link in README.md, docs/ and ARCHITECTURE.md leads to a file of the
/// repository and, with a `#section`, to a heading of it.
#[test]
fn every_link_in_the_docs_leads_somewhere_in_the_repository() {
    let output = std::process::Command::new("git").args(["ls-files"]).current_dir(repo()).output().unwrap();
    assert!(output.status.success(), "this test runs in the project's git work tree");
    let mut files: BTreeMap<PathBuf, PathBuf> =
        String::from_utf8(output.stdout).unwrap().lines().map(|line| (line.into(), line.into())).collect();
    let docs = doc_files();
    files.extend(docs.iter().map(|file| (file.clone(), file.clone())));
    let checked = |path: &Path| path == Path::new("ARCHITECTURE.md") || docs.iter().any(|doc| doc == path);
    check_links(&files, checked, "in the repository");
}

/// Issue 25 item 3: the package installs the docs its README links to. Every relative link in
/// the Markdown the package installs under /usr/share/doc/confronta-sync/ leads to a file (and
/// section) it installs there too; `tests/deb/run.sh` checks the same on an installed host.
#[test]
fn the_installed_docs_link_only_to_installed_docs() {
    let installed = installed_docs();
    for page in ["README.md", "docs/runbook.md", "docs/configuration.md", "docs/reasons.md"] {
        assert!(
            installed.contains_key(Path::new(page)),
            "the package does not install {page}: {installed:?}"
        );
    }
    // The companion's README is installed for the docs' links into it; its own links lead into
    // the source (its tests, its migrations) and are checked in the repository only.
    let ours = |path: &Path| path == Path::new("README.md") || path.starts_with("docs");
    check_links(&installed, ours, "in /usr/share/doc/confronta-sync/");
}
