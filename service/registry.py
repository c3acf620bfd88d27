"""The model registry: the packages under MODELS_DIR that are being served, and the ones that failed, with why.

Layout as in Triton's model repository: `<MODELS_DIR>/<id>/<version>/` with numeric versions. A package that fails
(package.py: bad manifest, missing file, wrong sha256, a graph that does not load) is kept as unavailable with its
reason; it never stops the others. MODEL_CONTROL says what may change while serving, as Triton's
--model-control-mode does:

- `none`: what was there at start is served until a restart;
- `poll`: MODELS_DIR is rescanned every POLL_SECONDS: a new version is verified, opened and warmed up before it
  takes traffic, a removed one is unloaded, a package that failed is retried once its files change;
- `explicit`: the repository API loads (rescans) and unloads models by name (routes/repository.py, gRPC).

Folders whose names start with "." are never read: copy a version in under a hidden name and rename it into place
(the exporter does), so that no half-copied package is seen. Requests already holding a model finish on it after
it is unloaded or replaced.

Only the repository is ever read: a name is looked up only when it is a model id (contract.manifest's rule, which
rules out ".", ".." and separators), a folder that resolves outside MODELS_DIR (a link) is skipped, and the reasons
that answers carry name a package's files by their place in the package, never by a path on this machine.
"""

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from contract.errors import BadRequestError, ModelUnavailableError, NotFoundError
from contract.manifest import MODEL_ID_RULE, is_model_id, parse_version
from service.config import Settings
from service.metrics import MODEL_INFO
from service.package import GPU_PROVIDERS, LoadedModel, UnavailableModel, choose_providers, open_package, preload_cuda

log = logging.getLogger("service.registry")
RETIRE_SECONDS = 120.0  # an unloaded version's batchers stop this long after it stops taking new requests


def visible_folders(folder: Path) -> list[Path]:
    """The folder's subfolders that lie in the folder itself (a link that leads elsewhere is skipped), hidden ones
    left out."""
    if not folder.is_dir():
        return []
    found = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    inside = [p for p in found if p.resolve().parent == folder.resolve()]
    for outside in set(found) - set(inside):
        log.warning("skipping %s: it resolves outside %s", outside, folder)
    return inside


def failure_reason(error: Exception, folder: Path, root: Path) -> str:
    """Why a package failed, for answers: one line that names the package's files as `<id>/<version>/<file>`, never
    a path on this machine (onnxruntime's and the OS's messages hold absolute paths)."""
    text = str(error)
    if isinstance(error, OSError) and error.filename:
        text = f"{error.strerror}: {Path(error.filename).name}"
    package = f"{folder.parent.name}/{folder.name}"
    places = {str(p): package for p in (folder.resolve(), folder.absolute())}
    places |= {str(p): "MODELS_DIR" for p in (root.resolve(), root.absolute())}
    for place in sorted(places, key=len, reverse=True):  # the package's own path before the folder holding it
        text = text.replace(place, places[place])
    return " ".join(text.split())[:300] or type(error).__name__


def invalid_id_error() -> NotFoundError:
    return NotFoundError(f"no such model: a model id is {MODEL_ID_RULE}")


def signature(folder: Path) -> tuple:
    """What changes when a package's files do (names, sizes, modification times): when to retry a failed one."""
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file()))


@dataclass
class Registry:
    settings: Settings
    models: dict[str, dict[int, LoadedModel]] = field(default_factory=dict)  # id -> version -> model
    unavailable: list[UnavailableModel] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    failed_signatures: dict[Path, tuple] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)  # one change of the repository at a time

    def load(self) -> None:
        """Start: every package under MODELS_DIR (in every control mode)."""
        self.providers = choose_providers(self.settings.PROVIDERS)
        preload_cuda(self.providers)
        if not self.settings.MODELS_DIR.is_dir():
            log.warning("models folder %s does not exist; serving no models", self.settings.MODELS_DIR)
        if self.settings.MODEL_CONTROL == "explicit" and not self.settings.API_KEY:
            log.warning("MODEL_CONTROL=explicit without API_KEY: whoever reaches the port can load and unload models")
        for folder in visible_folders(self.settings.MODELS_DIR):
            if not is_model_id(folder.name):
                log.warning("skipping %s: its name is not a model id (%s)", folder, MODEL_ID_RULE)
        self.sync()

    def sync(self) -> None:
        """Makes the served models what MODELS_DIR holds (start, and each poll)."""
        on_disk = {folder.name for folder in visible_folders(self.settings.MODELS_DIR) if is_model_id(folder.name)}
        for model_id in sorted(on_disk | set(self.models) | {u.id for u in self.unavailable}):
            self.sync_model(model_id)

    def sync_model(self, model_id: str) -> None:
        """Loads the model's new or changed versions, unloads the ones gone from disk."""
        with self.lock:
            folders = visible_folders(self.settings.MODELS_DIR / model_id)
            present = {parse_version(folder.name): folder for folder in folders}
            for version in set(self.models.get(model_id, {})) - set(present):
                self.drop(model_id, version)
            self.unavailable = [u for u in self.unavailable if u.id != model_id or u.folder in folders]
            for version, folder in present.items():
                if version in self.models.get(model_id, {}) or self.failed_signatures.get(folder) == signature(folder):
                    continue
                self.load_folder(model_id, version, folder)

    def load_folder(self, model_id: str, version: int | None, folder: Path) -> None:
        self.unavailable = [u for u in self.unavailable if u.folder != folder]
        try:
            if version is None:
                raise ValueError(f"{folder.name!r} is not a numeric version folder")
            model = open_package(folder, self.settings, self.providers)  # verified and warmed up before it serves
        except Exception as error:  # whatever is wrong with one package must not stop the others
            reason = failure_reason(error, folder, self.settings.MODELS_DIR)
            log.error("model %s version %s unavailable: %s", model_id, version, reason)
            self.unavailable.append(UnavailableModel(model_id, version, folder, reason))
            self.failed_signatures[folder] = signature(folder)
            return
        self.failed_signatures.pop(folder, None)
        log.info("loaded %s version %d on %s", model.id, model.version, model.provider)
        MODEL_INFO.labels(model.id, str(model.version), model.provider).set(1)
        self.models[model.id] = {**self.models.get(model.id, {}), model.version: model}  # one swap: readers see either

    def drop(self, model_id: str, version: int) -> None:
        versions = dict(self.models.get(model_id, {}))
        model = versions.pop(version)
        if versions:
            self.models[model_id] = versions
        else:
            self.models.pop(model_id, None)
        MODEL_INFO.remove(model.id, str(model.version), model.provider)
        log.info("unloaded %s version %d", model_id, version)
        # New requests get 404 now. The ones already holding the model go on through its batchers (a sample's
        # decoding comes after its sampling), so those close only after the longest a request should take.
        retire = threading.Timer(RETIRE_SECONDS, model.close)
        retire.daemon = True
        retire.start()

    def require_explicit(self, action: str) -> None:
        if self.settings.MODEL_CONTROL != "explicit":
            raise BadRequestError(f"{action} needs MODEL_CONTROL=explicit; it is {self.settings.MODEL_CONTROL}")

    def load_model(self, model_id: str) -> dict:
        """The repository API's load: (re)reads the model's folder; a version that fails leaves the others serving.
        Says which versions serve now and which were refused, why; 400 when none serves (as Triton's load)."""
        if not is_model_id(model_id):
            raise invalid_id_error()
        self.require_explicit("loading a model")
        on_disk = model_id in {folder.name for folder in visible_folders(self.settings.MODELS_DIR)}
        if on_disk or model_id in self.models or any(u.id == model_id for u in self.unavailable):
            self.sync_model(model_id)  # a model removed from disk is forgotten
        if not on_disk:
            raise NotFoundError(f"no model {model_id!r} in the repository")
        refused = [{"version": u.version, "reason": u.reason} for u in self.unavailable if u.id == model_id]
        if model_id not in self.models:
            reasons = self.reasons(model_id) or "its folder holds no numeric version folder"
            raise BadRequestError(f"model {model_id!r} has no version that loads: {reasons}")
        return {"name": model_id, "loaded": sorted(self.models[model_id]), "refused": refused}

    def unload_model(self, model_id: str) -> None:
        if not is_model_id(model_id):
            raise invalid_id_error()
        self.require_explicit("unloading a model")
        with self.lock:
            if model_id not in self.models:
                raise NotFoundError(f"model {model_id!r} is not loaded")
            for version in list(self.models[model_id]):
                self.drop(model_id, version)

    def reasons(self, model_id: str) -> str:
        return "; ".join(f"version {u.version}: {u.reason}" for u in self.unavailable if u.id == model_id)

    def index(self) -> list[dict]:
        """Every version on record: READY, or UNAVAILABLE with the reason."""
        ready = [{"name": m.id, "version": str(m.version), "state": "READY", "reason": ""} for m in self.all_models()]
        failed = [
            {"name": u.id, "version": str(u.version or ""), "state": "UNAVAILABLE", "reason": u.reason}
            for u in self.unavailable
        ]
        return sorted(ready + failed, key=lambda entry: (entry["name"], entry["version"]))

    def get(self, model_id: str, version: int | None = None) -> LoadedModel:
        """The named version, or the newest; NotFoundError or ModelUnavailableError otherwise."""
        if not is_model_id(model_id):
            raise invalid_id_error()
        versions = self.models.get(model_id, {})
        if version is None and versions:
            return versions[max(versions)]
        if version in versions:
            return versions[version]
        for broken in self.unavailable:
            if broken.id == model_id and version in (None, broken.version):
                message = f"model {model_id!r} version {broken.version} failed to load: {broken.reason}"
                raise ModelUnavailableError(message)
        if versions:
            raise NotFoundError(f"model {model_id!r} has no version {version}; it has {sorted(versions)}")
        raise NotFoundError(f"no model {model_id!r}")

    def all_models(self) -> list[LoadedModel]:
        return [model for versions in list(self.models.values()) for model in versions.values()]

    def close(self) -> None:
        for model in self.all_models():
            model.close()

    def readiness(self) -> tuple[bool, dict]:
        """Ready once every loadable model is loaded and warmed up, on a GPU if REQUIRE_GPU is set; the body says
        which provider each model runs on and why the others are unavailable."""
        on_gpu = all(model.provider in GPU_PROVIDERS for model in self.all_models())
        ready = not self.settings.REQUIRE_GPU or (on_gpu and bool(self.models))
        body = {
            "status": "ready" if ready else "not_ready",
            "models": {f"{m.id}/{m.version}": m.provider for m in self.all_models()},
            "unavailable": {f"{u.id}/{u.version}": u.reason for u in self.unavailable},
        }
        if not ready:
            body["reason"] = "REQUIRE_GPU is set but a model runs on the CPU (or none is loaded)"
        return ready, body
