"""what MLflow clients store that Cairn kept no place for

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 12:00:00.000000

An experiment's artifact_location as its creator gave it; a dataset input's source type, schema, profile
and input tags; a model version's MLflow stage; metrics logged against a
logged model and the models a run used or produced; and logged models made outside any run (MLflow 3's ``log_model`` with no active run):
``logged_models`` gains its workspace and experiment (filled in from the run for existing rows), its run
becomes optional, and such a model's files go to ``logged_model_files``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('artifact_location', sa.Text(), server_default='', nullable=False))
    with op.batch_alter_table('dataset_inputs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_type', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('dataset_schema', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('profile', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('input_tags', sa.JSON(), nullable=True))
    with op.batch_alter_table('logged_models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('workspace_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('experiment_id', sa.Integer(), nullable=True))
    op.execute("UPDATE logged_models SET workspace_id = (SELECT runs.workspace_id FROM runs WHERE runs.id = "
               "logged_models.run_id), experiment_id = (SELECT runs.experiment_id FROM runs WHERE runs.id = "
               "logged_models.run_id)")
    with op.batch_alter_table('logged_models', schema=None) as batch_op:
        batch_op.alter_column('run_id', existing_type=sa.String(length=32), nullable=True)
        batch_op.alter_column('workspace_id', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('experiment_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key('fk_logged_models_workspace_id', 'workspaces', ['workspace_id'], ['id'])
        batch_op.create_foreign_key('fk_logged_models_experiment_id', 'experiments', ['experiment_id'], ['id'])
        batch_op.create_index('ix_logged_models_workspace_id', ['workspace_id'], unique=False)
        batch_op.create_index('ix_logged_models_experiment_id', ['experiment_id'], unique=False)
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stage', sa.String(length=16), server_default='None', nullable=False))
    op.create_table(
        'logged_model_files',
        sa.Column('logged_model_id', sa.String(length=32), nullable=False),
        sa.Column('path', sa.String(length=1024), nullable=False),
        sa.Column('digest', sa.String(length=71), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['digest'], ['blobs.digest']),
        sa.ForeignKeyConstraint(['logged_model_id'], ['logged_models.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('logged_model_id', 'path'),
    )
    with op.batch_alter_table('logged_model_files', schema=None) as batch_op:
        batch_op.create_index('ix_logged_model_files_digest', ['digest'], unique=False)
    op.create_table(
        'logged_model_metrics',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('logged_model_id', sa.String(length=32), nullable=False),
        sa.Column('run_id', sa.String(length=32), nullable=False),
        sa.Column('key', sa.String(length=250), nullable=False),
        sa.Column('value', sa.Float(), nullable=True),
        sa.Column('timestamp', sa.BigInteger(), nullable=False),
        sa.Column('step', sa.BigInteger(), nullable=False),
        sa.Column('dataset_name', sa.String(length=250), nullable=False),
        sa.Column('dataset_digest', sa.String(length=250), nullable=False),
        sa.ForeignKeyConstraint(['logged_model_id'], ['logged_models.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('logged_model_metrics', schema=None) as batch_op:
        batch_op.create_index('ix_logged_model_metrics_logged_model_id', ['logged_model_id'], unique=False)
    op.create_table(
        'run_model_links',
        sa.Column('run_id', sa.String(length=32), nullable=False),
        sa.Column('logged_model_id', sa.String(length=32), nullable=False),
        sa.Column('direction', sa.String(length=8), nullable=False),
        sa.Column('step', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('run_id', 'logged_model_id', 'direction'),
    )


def downgrade() -> None:
    op.drop_table('run_model_links')
    with op.batch_alter_table('logged_model_metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_logged_model_metrics_logged_model_id')
    op.drop_table('logged_model_metrics')
    with op.batch_alter_table('logged_model_files', schema=None) as batch_op:
        batch_op.drop_index('ix_logged_model_files_digest')
    op.drop_table('logged_model_files')
    # dropped in place (SQLite 3.35+, PostgreSQL): a batch rebuild would drop rows other tables refer to
    op.execute("ALTER TABLE model_versions DROP COLUMN stage")
    op.execute("DELETE FROM logged_models WHERE run_id IS NULL")
    with op.batch_alter_table('logged_models', schema=None) as batch_op:
        batch_op.drop_index('ix_logged_models_experiment_id')
        batch_op.drop_index('ix_logged_models_workspace_id')
        batch_op.drop_constraint('fk_logged_models_experiment_id', type_='foreignkey')
        batch_op.drop_constraint('fk_logged_models_workspace_id', type_='foreignkey')
        batch_op.alter_column('run_id', existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_column('experiment_id')
        batch_op.drop_column('workspace_id')
    for column in ('input_tags', 'profile', 'dataset_schema', 'source_type'):
        op.execute(f"ALTER TABLE dataset_inputs DROP COLUMN {column}")
    op.execute("ALTER TABLE experiments DROP COLUMN artifact_location")
