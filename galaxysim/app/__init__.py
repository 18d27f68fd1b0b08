"""The application layer: the ``galaxysim`` command and what it writes.

Nothing in the library imports from here.

* :mod:`~galaxysim.app.cli`: the command line.
* :mod:`~galaxysim.app.collections`: collections and query images as the
  commands read them (one loader for every command), and the default query.
* :mod:`~galaxysim.app.outputs`: the output folder of a ranking run.
* :mod:`~galaxysim.app.report`: the self-contained HTML report.
* :mod:`~galaxysim.app.evaluation`: every ranking method compared on one collection;
  :mod:`~galaxysim.app.evaluation_methods` (the methods and how each is built),
  :mod:`~galaxysim.app.evaluation_measures` (the figures of one method and their
  intervals) and :mod:`~galaxysim.app.evaluation_table` (the result, its reports and
  figure).
"""
