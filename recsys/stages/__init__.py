"""The stages of one nightly run, one module each, as functions of (settings, run date).

In run order: :mod:`~recsys.stages.resolve` (the run's date, id, settings and Spark job
arguments), :mod:`~recsys.stages.validate` (the Great Expectations gate),
:mod:`~recsys.stages.tune` (optional parameter search), :mod:`~recsys.stages.train` (one
function for every registered model), :mod:`~recsys.stages.similar` (nearest items),
:mod:`~recsys.stages.recommend` (candidates, ranking, the serving rule),
:mod:`~recsys.stages.publish` (write-audit-publish) and :mod:`~recsys.stages.report`
(the run's HTML report). :mod:`~recsys.stages.inputs` builds what training reads from the
lake; :mod:`~recsys.stages.manifest` writes a trained model's folder.

The DAG's tasks and the CLI call these; each reads its inputs from the lake or the model
folders, writes its outputs there, and returns a small JSON-able dict (paths, counts,
metrics) that Airflow passes along as XCom. No stage passes data through XCom. Every
module imports its heavy libraries inside its functions, so the DAG parses fast.
"""
