"""Content hashes of input files (SHA-256 of the file's bytes), and a small hashing process for
the command line: it hashes the inputs on another core while the command is still loading
(a thread would share the loading core's GIL; a process does not). Light on purpose: hashlib
only, so the process starts in milliseconds.

    python -m cytomnt.inputs.hashing < paths   # one path per line in, one JSON [path, sha256] per line out
"""
from __future__ import annotations

import hashlib
import json
import mmap
import sys
import threading
from pathlib import Path

#: Bytes read per call when hashing: each read and each hash update releases the GIL once.
HASH_CHUNK = 16 << 20
_HASH_BUFFER = threading.local()


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes: hashed straight from the page cache through a memory map (no
    copy; a third of the time of reading it), or read in large chunks where a file cannot be
    mapped (empty, a pipe, a file system without mmap)."""
    with open(path, "rb", buffering=0) as fh:
        try:
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return hashlib.sha256(mm).hexdigest()
        except (OSError, ValueError):
            pass
        h = hashlib.sha256()
        buf = getattr(_HASH_BUFFER, "buf", None)
        if buf is None:
            buf = _HASH_BUFFER.buf = bytearray(HASH_CHUNK)
        view = memoryview(buf)
        fh.seek(0)
        while n := fh.readinto(view):
            h.update(view[:n])
        return h.hexdigest()


def main() -> None:
    for line in sys.stdin:
        path = line.rstrip("\n")
        try:
            digest = sha256_file(Path(path))
        except OSError:
            continue                      # reported when the file is read
        sys.stdout.write(json.dumps([path, digest]) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
