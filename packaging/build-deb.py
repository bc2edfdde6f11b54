#!/usr/bin/env python3
"""Builds the Debian package from Cargo.toml's [package.metadata.deb] with dpkg-deb.

    packaging/build-deb.py [--profile release|dev] [--no-build] [--output DIR] [--generate-only]

It reads the same table cargo-deb reads (assets, maintainer scripts, changelog, license file,
section, depends with "$auto") and needs only what a Debian machine with Rust already has:
Python 3.11 (tomllib), dpkg-deb and dpkg-shlibdeps. It exists so that a fresh machine can build
and test the package without first compiling cargo-deb (about 80 s on two cores). Files under
/etc are conffiles, the binary's shared-library dependencies come from dpkg-shlibdeps, and every
file is owned by root. The package's version is the top entry of packaging/debian/changelog,
whose upstream part must be Cargo.toml's version. The man pages and shell completions are made
by the binary just built (`confronta-sync generate`) into target/<profile>/generated/, from the
same definition as its parser; --generate-only stops there (what `cargo deb` needs first).
Prints the path of the .deb it wrote.
"""
import argparse
import glob
import gzip
import hashlib
import re
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import textwrap
import tomllib

REPO = pathlib.Path(__file__).resolve().parent.parent


def run(*cmd, cwd=None):
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


def shlib_depends(binary: pathlib.Path) -> str:
    """The `Depends` dpkg-shlibdeps computes for the binary (cargo-deb's "$auto")."""
    with tempfile.TemporaryDirectory() as scratch:
        control = pathlib.Path(scratch, "debian", "control")
        control.parent.mkdir()
        control.write_text("Source: confronta-sync\n\nPackage: confronta-sync\nArchitecture: any\n")
        out = run("dpkg-shlibdeps", "-O", "-e", str(binary), cwd=scratch)
    for line in out.splitlines():
        if line.startswith("shlibs:Depends="):
            return line.split("=", 1)[1]
    return ""


def changelog_version(changelog: pathlib.Path) -> str:
    """The version of the changelog's top entry: `confronta-sync (0.2.0-1) unstable; ...`."""
    first = changelog.read_text().splitlines()[0]
    match = re.match(r"^\S+ \(([^)]+)\) ", first)
    if not match:
        sys.exit(f"{changelog}: the first line names no version: {first!r}")
    return match.group(1)


def gzip_n(data: bytes) -> bytes:
    """gzip -9n: no name or time in the header, so the same input makes the same package."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def generate_reference(binary: pathlib.Path, out: pathlib.Path) -> None:
    """Man pages (gzipped, as Debian installs them) and completions, from the binary itself."""
    shutil.rmtree(out, ignore_errors=True)
    man = out / "man"
    man.mkdir(parents=True)
    run(str(binary), "generate", "man", str(man))
    for page in sorted(man.glob("*.1")):
        page.with_name(page.name + ".gz").write_bytes(gzip_n(page.read_bytes()))
        page.unlink()
    completions = out / "completions"
    completions.mkdir()
    for shell, name in [("bash", "confronta-sync"), ("zsh", "_confronta-sync"), ("fish", "confronta-sync.fish")]:
        (completions / name).write_text(run(str(binary), "generate", f"complete-{shell}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="release", choices=["release", "dev"])
    parser.add_argument("--no-build", action="store_true", help="package the binary as it is")
    parser.add_argument("--output", default="target/debian")
    parser.add_argument("--fast", action="store_true", help="light compression, for tests")
    parser.add_argument("--generate-only", action="store_true", help="only the man pages and completions")
    args = parser.parse_args()

    cargo = tomllib.loads((REPO / "Cargo.toml").read_text())
    package = cargo["package"]
    deb = package["metadata"]["deb"]
    profile_dir = "debug" if args.profile == "dev" else "release"
    changelog = REPO / deb["changelog"]
    version = changelog_version(changelog)
    if version.rsplit("-", 1)[0] != package["version"]:
        sys.exit(f"{changelog} is at {version}, Cargo.toml at {package['version']}: add the changelog entry")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--profile", args.profile, "--bin", package["name"]], cwd=REPO, check=True)
    generate_reference(REPO / "target" / profile_dir / package["name"], REPO / "target" / profile_dir / "generated")
    if args.generate_only:
        return

    arch = run("dpkg", "--print-architecture").strip()
    with tempfile.TemporaryDirectory() as staging:
        root = pathlib.Path(staging)
        binary = None
        for source, target, mode in deb["assets"]:
            # The table names the release binary, as cargo-deb's does; --profile picks the build.
            source = source.replace("target/release/", f"target/{profile_dir}/", 1)
            matches = sorted(glob.glob(str(REPO / source)))
            if not matches:
                sys.exit(f"asset {source} matches no file")
            for match in matches:
                dest = root / (target + os.path.basename(match) if target.endswith("/") else target)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(match, dest)
                dest.chmod(int(mode, 8))
                if source.endswith(f"target/{profile_dir}/{package['name']}"):
                    binary = dest
                    # As cargo-deb does: no symbols or debug sections in the installed binary.
                    run("strip", "--strip-unneeded", "--remove-section=.comment", str(dest))
        doc = root / "usr/share/doc" / package["name"]
        doc.mkdir(parents=True, exist_ok=True)
        # The MIT licence is not in /usr/share/common-licenses: its text goes in, as policy asks.
        license_text = (REPO / deb["license-file"][0]).read_text()
        copyright_line = next(line for line in license_text.splitlines() if line.startswith("Copyright"))
        body = "\n".join(" " + line if line.strip() else " ." for line in license_text.strip().splitlines())
        (doc / "copyright").write_text(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
            f"Upstream-Name: {package['name']}\n\nFiles: *\n"
            f"Copyright: {copyright_line.removeprefix('Copyright').strip()}\n"
            f"License: {package['license']}\n{body}\n"
        )
        (doc / "changelog.Debian.gz").write_bytes(gzip_n(changelog.read_bytes()))
        for path in [root, *root.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)

        control_dir = root / "DEBIAN"
        control_dir.mkdir()
        conffiles = sorted("/" + str(p.relative_to(root)) for p in (root / "etc").rglob("*") if p.is_file())
        (control_dir / "conffiles").write_text("".join(f"{c}\n" for c in conffiles))
        md5sums = []
        for path in sorted(p for p in root.rglob("*") if p.is_file() and control_dir not in p.parents):
            md5sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {path.relative_to(root)}\n")
        (control_dir / "md5sums").write_text("".join(md5sums))
        for script in ["preinst", "postinst", "prerm", "postrm"]:
            source = REPO / deb["maintainer-scripts"] / script
            if source.exists():
                shutil.copyfile(source, control_dir / script)
                (control_dir / script).chmod(0o755)

        depends = ", ".join(
            d
            for item in deb.get("depends", "").split(",")
            if (d := (shlib_depends(binary) if item.strip() == "$auto" and binary else item.strip()))
        )
        size_kib = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) // 1024
        paragraphs = [textwrap.wrap(p, 78) for p in deb["extended-description"].split("\n\n")]
        extended = "\n .\n".join("\n".join(" " + line for line in lines) for lines in paragraphs)
        control = [
            f"Package: {package['name']}",
            f"Version: {version}",
            f"Architecture: {arch}",
            f"Section: {deb['section']}",
            f"Priority: {deb['priority']}",
            f"Maintainer: {deb['maintainer']}",
            f"Installed-Size: {size_kib}",
        ]
        if depends:
            control.append(f"Depends: {depends}")
        control.append(f"Description: {package['description']}\n{extended}")
        (control_dir / "control").write_text("\n".join(control) + "\n")

        output = REPO / args.output
        output.mkdir(parents=True, exist_ok=True)
        deb_path = output / f"{package['name']}_{version}_{arch}.deb"
        compression = ["-Zgzip", "-z1"] if args.fast else []
        run("dpkg-deb", "--root-owner-group", *compression, "--build", str(root), str(deb_path))
    print(deb_path)


if __name__ == "__main__":
    main()
