-- netmedic collector, SQLite schema v11: no index on the incidents' experiment.
-- incidents_by_experiment (experiment_id, experiment_arm) served no query: the holdout report
-- selects the incidents of its period by started_at and groups the arms itself (its plan is the
-- same without this index), and no list or lookup filters on the experiment. Every incident an
-- experiment covered paid an entry in it.
DROP INDEX IF EXISTS incidents_by_experiment;
