"""The DAG files the tests write into the DAGs folder (as text: Airflow parses files, not objects)."""

RETRAIN = '''
from datetime import timedelta

from airflow.sdk import dag, get_current_context, task

from cairn.integrations.airflow import (CairnBranchOnMetricOperator, CairnEndRunOperator,
    CairnPromoteModelOperator, CairnPromotionApprovalSensor, CairnSetAliasOperator, cairn_run)


class Scorer:
    """The "model": predicts a constant score (the tests care about the registry, not the fit)."""

    def __init__(self, score):
        self.score = score

    def predict(self, rows):
        return [self.score for _ in rows]


def fit():
    return Scorer(get_current_context()["params"]["val_auc"])


@dag(dag_id="DAG_ID", schedule="@weekly", catchup=False, params={"val_auc": 0.9},
     default_args={"retries": 0})
def retrain_churn():
    @task
    def train() -> str:
        with cairn_run(experiment="EXPERIMENT") as run:        # one run per DAG run, whichever task opens it
            run.log_params({"lr": 0.05}); model = fit()
            run.define_metric("val_auc", goal="max")
            run.log_metrics({"val_auc": model.score - 0.05}, step=0)
            run.log_metrics({"val_auc": model.score}, step=1)
            mv = run.log_model(model, registered_model_name="dev.MODEL", aliases=["challenger"])
            return str(mv.version)

    gate = CairnBranchOnMetricOperator(task_id="beats_champion", candidate="models:/dev.MODEL@challenger",
        baseline="models:/prod.MODEL@champion", metric="val_auc", summary="best", goal="max", min_delta=0.002,
        if_better="promote", otherwise="keep_champion")
    promote = CairnPromoteModelOperator(task_id="promote", model="dev.MODEL", version="{{ ti.xcom_pull('train') }}",
        to="prod.MODEL", aliases=["champion"], note="weekly retrain {{ ds }}")     # a promotion request when prod needs approval
    approved = CairnPromotionApprovalSensor(task_id="approved", request_id="{{ ti.xcom_pull('promote') }}",
        deferrable=True, timeout=3 * 24 * 3600, poll_interval=0.5)
    deploy = CairnSetAliasOperator(task_id="deploy", model="prod.MODEL", alias="serving",
        version="{{ ti.xcom_pull('approved')['version'] }}", reason="deployed by {{ dag.dag_id }}",
        cairn_conn_id="cairn_deploy")

    @task
    def keep_champion() -> str:
        return "champion kept"

    version = train()
    end = CairnEndRunOperator(task_id="end_run", experiment="EXPERIMENT").as_teardown(setups=version)
    version >> gate >> [promote, keep_champion()]
    promote >> approved >> deploy >> end


dag_object = retrain_churn()
'''

RETRY = '''
from datetime import timedelta

from airflow.sdk import dag, task

from cairn.integrations.airflow import cairn_run


@dag(dag_id="DAG_ID", schedule=None, catchup=False)
def flaky():
    @task(retries=1, retry_delay=timedelta(seconds=0))
    def train(ti=None) -> str:
        with cairn_run(experiment="EXPERIMENT") as run:
            run.log_metrics({"loss": 1.0 / ti.try_number}, step=ti.try_number)
            if ti.try_number == 1:
                raise RuntimeError("the first attempt dies")
            return run.id

    @task
    def evaluate(train_run_id: str) -> str:
        with cairn_run(experiment="EXPERIMENT", end=True) as run:
            run.log_metrics({"val_loss": 0.3}, step=0)
            assert run.id == train_run_id
            return run.id

    evaluate(train())


dag_object = flaky()
'''

WAIT_FOR_VERSION = '''
from airflow.sdk import dag

from cairn.integrations.airflow import CairnModelVersionSensor


@dag(dag_id="DAG_ID", schedule=None, catchup=False)
def wait_for_version():
    CairnModelVersionSensor(task_id="poke", model="dev.MODEL", after_version=1, mode="poke", poke_interval=0.2,
                            timeout=60)
    CairnModelVersionSensor(task_id="deferred", model="dev.MODEL", alias="champion", after_version=1,
                            deferrable=True, poll_interval=0.2, timeout=60)
    CairnModelVersionSensor(task_id="gives_up", model="dev.MODEL", alias="nobody", mode="reschedule",
                            poke_interval=0.2, timeout=1, soft_fail=True)


dag_object = wait_for_version()
'''


def render(template: str, **names: str) -> str:
    for key, value in names.items():
        template = template.replace(key, value)
    return template

REGISTER_AND_PROMOTE = '''
from airflow.sdk import dag, task

from cairn.integrations.airflow import (CairnPromoteModelOperator, CairnPromotionApprovalSensor,
    CairnRegisterModelOperator, cairn_run)


class Scorer:
    def predict(self, rows):
        return [0.5 for _ in rows]


@dag(dag_id="DAG_ID", schedule=None, catchup=False)
def register_and_promote():
    @task
    def train() -> str:
        with cairn_run(experiment="EXPERIMENT", end=True) as run:
            run.log_model(Scorer())                       # logged, not registered
            return run.id

    register = CairnRegisterModelOperator(task_id="register", run_id="{{ ti.xcom_pull('train') }}",
        name="dev.MODEL", tags={"dag": "{{ dag.dag_id }}"}, aliases=["candidate"])
    to_staging = CairnPromoteModelOperator(task_id="to_staging", model="dev.MODEL",
        version="{{ ti.xcom_pull('register')['version'] }}", to="staging.MODEL", note="no approval needed",
        cairn_conn_id="cairn_deploy")
    nothing_to_approve = CairnPromotionApprovalSensor(task_id="nothing_to_approve",
        request_id="{{ ti.xcom_pull('to_staging') }}", deferrable=True)
    forced = CairnPromoteModelOperator(task_id="forced_into_prod", model="dev.MODEL",
        version="{{ ti.xcom_pull('register')['version'] }}", to="prod.MODEL", mode="direct",
        cairn_conn_id="cairn_deploy")
    rejected = CairnPromoteModelOperator(task_id="ask_prod", model="dev.MODEL",
        version="{{ ti.xcom_pull('register')['version'] }}", to="prod.MODEL", note="try it")
    soft = CairnPromotionApprovalSensor(task_id="soft_approval", request_id="{{ ti.xcom_pull('ask_prod') }}",
        deferrable=True, poll_interval=0.2, soft_fail=True)

    train() >> register >> [to_staging, forced, rejected]
    to_staging >> nothing_to_approve
    rejected >> soft


dag_object = register_and_promote()
'''
