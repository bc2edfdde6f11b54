#!/usr/bin/env python3
"""Builds the Debian package from Cargo.toml's [package.metadata.deb] with dpkg-deb.

    packaging/build-deb.py [--profile release|dev] [--no-build] [--output DIR]

It reads the same table cargo-deb reads (assets, maintainer scripts, section, depends = "$auto")
and needs only what a Debian machine with Rust already has: Python 3.11 (tomllib), dpkg-deb and
dpkg-shlibdeps. It exists so that a fresh machine can build and test the package without first
compiling cargo-deb (about 80 s on two cores). Files under /etc are conffiles, the binary's
shared-library dependencies come from dpkg-shlibdeps, and every file is owned by root.
Prints the path of the .deb it wrote.
"""
import argparse
import glob
import hashlib
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="release", choices=["release", "dev"])
    parser.add_argument("--no-build", action="store_true", help="package the binary as it is")
    parser.add_argument("--output", default="target/debian")
    parser.add_argument("--fast", action="store_true", help="light compression, for tests")
    args = parser.parse_args()

    cargo = tomllib.loads((REPO / "Cargo.toml").read_text())
    package = cargo["package"]
    deb = package["metadata"]["deb"]
    profile_dir = "debug" if args.profile == "dev" else "release"
    if not args.no_build:
        subprocess.run(["cargo", "build", "--profile", args.profile, "--bin", package["name"]], cwd=REPO, check=True)

    arch = run("dpkg", "--print-architecture").strip()
    version = f"{package['version']}-1"
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
        (doc / "copyright").write_text(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
            f"Upstream-Name: {package['name']}\n\nFiles: *\nCopyright: {deb['maintainer']}\n"
            f"License: {package['license']}\n"
        )
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

        depends = shlib_depends(binary) if deb.get("depends") == "$auto" and binary else deb.get("depends", "")
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
