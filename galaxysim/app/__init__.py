"""The application layer: the ``galaxysim`` command and what it writes.

Nothing in the library imports from here.

* :mod:`~galaxysim.app.cli`: the command line.
* :mod:`~galaxysim.app.outputs`: the output folder of a ranking run.
* :mod:`~galaxysim.app.report`: the self-contained HTML report.
* :mod:`~galaxysim.app.evaluation`: every ranking method compared on one collection.
"""
