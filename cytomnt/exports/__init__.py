"""What cytomnt writes for people and other tools, from a run's store: the HTML report, a FlowJo
workspace of chosen samples, a population's cells as AnnData or FCS.

May import every other ``cytomnt`` package (``inputs``, ``sample``, ``run``, ``patients``) and
``gating``; nothing imports ``exports`` but the command line and the demo.
"""
