"""Run a membership-inference scenario: `python run.py [overrides]`, or a sweep with `-m`.

The scenario is composed from conf/ by Hydra; mia_engine does the work. See README.md.
"""

import hydra

from mia_engine.app import run_job
from mia_engine.cli import exit_on_user_error, guarded, register_resolvers
from mia_engine.config import register_configs

register_configs()
register_resolvers()  # ${mia.now:...} and ${mia.pid:}: conf/config.yaml's output directories


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
@exit_on_user_error
def main(cfg):
    return run_job(cfg)


if __name__ == "__main__":
    guarded(main)
