"""Every recipe in configs/ loads, type-checks and names a registered dataset."""

import pytest

from kc2f.training.run_config import RunConfig
from kc2f.data.registry import DATASETS
from tests.conftest import REPO

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def test_there_are_recipes_for_the_papers_datasets():
    names = {path.stem for path in CONFIGS}
    assert {"audioset", "vggsound", "voxceleb", "kinetics_sounds", "fsdd", "synthetic"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_recipe_loads(path):
    built = RunConfig.from_sources(path)
    assert built.dataset in DATASETS
    assert built.factors[-1] == 1


def test_the_synthetic_recipe_is_the_demos():
    from kc2f.experiments.demo import DEMO_FACTORS, DEMO_METHOD, demo_config

    recipe = RunConfig.from_sources(REPO / "configs" / "synthetic.yaml")
    assert recipe == demo_config(method=DEMO_METHOD, factors=DEMO_FACTORS)
