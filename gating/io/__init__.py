"""Files in and out: which files are FCS files, reading them (structure checked first, known
vendor defects repaired and named, events at disk speed), and writing files atomically (FCS 3.1
included).

May import: ``gating.stable``, ``gating.parallel``. Never another ``gating`` package.
"""
