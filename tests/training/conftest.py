"""A prior whose labels are optional (trained with label dropout), exported and served: shared by the tests of
label dropout and of the sampling sweep."""

import pytest

from service.config import Settings
from service.registry import Registry
from tests.conftest import DATA, TINY_PRIOR, TinyPipeline, run_options
from training.export.package import ExportOptions
from training.export.vqvae import export_vqvae
from training.prior import PriorOptions, train_prior


@pytest.fixture(scope="session")
def optional_labels(tiny_pipeline: TinyPipeline, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("label-dropout")
    options = PriorOptions(vqvae=str(tiny_pipeline.vqvae), conditional=True, label_dropout=0.2)
    prior = train_prior(run_options(root / "prior", epochs=1), options, TINY_PRIOR)
    package = export_vqvae(
        ExportOptions(vqvae=str(tiny_pipeline.vqvae), prior=str(prior), data=DATA, out=str(root / "models"), id="opt")
    )
    registry = Registry(Settings(MODELS_DIR=root / "models"))
    registry.load()
    yield package, registry.get("opt"), prior
    registry.close()
