"""Download and unpack the published source distribution of an installed package.

    python upstream/fetch.py celery            # prints the unpacked source folder

The version is the one installed in the running interpreter, so the tests fetched are the tests of the code
under test. The sdist comes through pip (``pip download --no-deps --no-binary :all: NAME==VERSION``) from the
package index pip is configured with, and is unpacked once into ``.upstream-cache/src/NAME-VERSION/`` (ignored by
git); later calls reuse it. Nothing from it is ever copied into this repository.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".upstream-cache"


class FetchError(RuntimeError):
    """The sdist could not be downloaded or unpacked; the message says which and why."""


def installed_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        raise FetchError(f"{dist} is not installed in {sys.executable}: install it first") from None


def fetch(dist: str, version: str | None = None, cache: Path = CACHE) -> Path:
    """Return the unpacked sdist of ``dist`` (the installed version unless ``version`` is given)."""
    version = version or installed_version(dist)
    target = cache / "src" / f"{_normalise(dist)}-{version}"
    if (target / ".complete").exists():
        return target
    archive = _download(dist, version, cache / "sdist")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        top = _unpack(archive, Path(tmp))
        (top / ".complete").write_text(f"{archive.name}\n")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        top.rename(target)
    return target


def _normalise(dist: str) -> str:
    return dist.lower().replace("-", "_").replace(".", "_")


def _download(dist: str, version: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    for found in _archives(dist, version, into):
        return found
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-binary", ":all:", "--dest", str(into), f"{dist}=={version}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise FetchError(
            f"pip could not download the sdist of {dist}=={version} (exit {done.returncode}):\n{done.stderr.strip()}"
        )
    for found in _archives(dist, version, into):
        return found
    raise FetchError(f"pip downloaded no sdist of {dist}=={version} into {into}")


def _archives(dist: str, version: str, folder: Path) -> list[Path]:
    stem = f"{_normalise(dist)}-{version}"
    return sorted(
        path
        for path in folder.iterdir()
        if _normalise(path.name.split(f"-{version}", 1)[0]) + f"-{version}" == stem
        and path.name.endswith((".tar.gz", ".zip"))
    )


def _unpack(archive: Path, into: Path) -> Path:
    """Unpack ``archive`` into ``into`` and return its single top-level folder."""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zipped:
            for name in zipped.namelist():
                if name.startswith("/") or ".." in Path(name).parts:
                    raise FetchError(f"{archive.name}: unsafe path {name!r}")
            zipped.extractall(into)
    else:
        with tarfile.open(archive) as tarred:
            tarred.extractall(into, filter="data")
    tops = [path for path in into.iterdir() if path.is_dir()]
    if len(tops) != 1:
        raise FetchError(f"{archive.name}: expected one top-level folder, found {sorted(p.name for p in tops)}")
    return tops[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("dist", help="distribution name, e.g. celery")
    parser.add_argument("--version", help="version to fetch (default: the installed one)")
    args = parser.parse_args(argv)
    try:
        print(fetch(args.dist, args.version))
    except FetchError as error:
        print(f"fetch: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
