"""The recommender: datasets, model families and selection, evaluation, registry, scoring.

Analysts call the same functions as the CLI::

    from lakehouse.config import Settings
    from lakehouse.recsys.train import train
    from lakehouse.recsys.score import recommend
    from lakehouse.recsys.registry import Registry

    settings = Settings.load()
    result = train(settings)              # lakehouse train
    recommend(settings)                   # lakehouse recommend
    Registry(settings.models_dir).versions()   # lakehouse models list
"""
