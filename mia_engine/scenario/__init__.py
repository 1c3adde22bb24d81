"""One membership-inference scenario, by job: :mod:`.plan` validates and plans (nothing
drawn), :mod:`.attacker` learns what the attacker knows (once, for the single run and the
game), :mod:`.execute` runs the scenario, :mod:`.results` holds what it produced, and
:mod:`.game` plays the individual's privacy game."""

from .execute import execute_scenario, run_scenario
from .plan import ScenarioPlan, prepare_scenario
from .results import AttackResult, Dataset, RecordResult, ScenarioResult

__all__ = ["AttackResult", "Dataset", "RecordResult", "ScenarioPlan", "ScenarioResult", "execute_scenario",
           "prepare_scenario", "run_scenario"]
