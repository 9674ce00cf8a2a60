"""What the user hands in, read and checked: the panel, the manifest, the gate map, the strategy
(template, Gating-ML, openCyto, FlowJo), the rules file's raw mapping, the user's tables and dates,
and which files a run has (with their content hashes).

May import: ``gating``, ``cytomnt.errors``, ``cytomnt.ruo``. Nothing else of ``cytomnt``: every
stage builds on its inputs, so they sit at the bottom. Light on purpose (``python -m
cytomnt.inputs.hashing`` starts in milliseconds).
"""
