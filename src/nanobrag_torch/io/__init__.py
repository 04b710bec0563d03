"""Readers and writers of nanoBragg's file formats: MOSFLM matrices, HKL text and Fdump
caches, SMV images, PGM previews and source lists. Every writer goes through
:func:`nanobrag_torch.io.atomic.atomic_write`, so a failed run never leaves a half-written file."""
