"""mia-engine: declarative membership-inference-attack scenarios on tabular models.

Importing the package is cheap; heavy libraries (scikit-learn, SciPy, Matplotlib, MLflow)
load only when a scenario runs. Entry points:

- :func:`mia_engine.scenario.run_scenario` - a resolved config mapping in, a typed result out.
- ``run.py`` - the Hydra command line (``python run.py``, ``python run.py -m ...``).
"""

__version__ = "0.1.0"
