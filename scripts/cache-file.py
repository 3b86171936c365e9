#!/usr/bin/env python3
"""cache-file.py FILE...: read each FILE once into the page cache, in 4 KiB pages.

The benchmarks do this to a vhdmount image before mounting it, so that its
pages are cached as a long-lived image's are: on this VM a write into a
never-touched page-cache page costs 350-1,000 MB/s against ~9 GB/s into a
cached one (docs/PERFORMANCE.md, "Sequential write through FUSE").

Not with `cat`: with readahead on (8 MiB on this VM's disk) the page cache
makes 2 MiB folios, and ext4 walks all 512 blocks of a folio on every 4 KiB
write into it and again at every flush, which no image vhdmount wrote
itself has (its host writes in 256 KiB pieces, libvdisk/host/file.c), and a
device with the common 128 KiB readahead would not make either. With
POSIX_FADV_RANDOM the kernel reads without readahead, in 4 KiB pages.
"""
import os
import sys

CHUNK = 1 << 20

for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        while os.read(fd, CHUNK):
            pass
    finally:
        os.close(fd)
