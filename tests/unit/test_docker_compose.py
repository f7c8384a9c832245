"""docker-compose.yml and the Dockerfile, checked against the code (no Docker engine here: nothing is run).

Each test reads the compose file as Compose would (YAML, ``<<:`` merge keys resolved) and
compares one of its assumptions with what the project really has: the ``RECSYS_*``
variables recsys reads, the Spark master's address and port, the PostgreSQL credentials and
the store factory, the commands and Java classes the services start, and the image's Python,
Java and dependencies. The image installs the same ``requirements.lock`` as ``.venv``, so
what pip put in ``.venv`` (pyspark's scripts and jars, the ``recsys`` command) stands for what
is in the image's ``/opt/venv``.
"""

from __future__ import annotations

import importlib
import inspect
import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings

from recsys.config import PROJECT_ROOT, Settings

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
SERVICES = {"postgres", "spark-master", "spark-worker", "airflow"}
RECSYS_SERVICES = ("spark-master", "spark-worker", "airflow")  # the services built from the project's image
SPARK_MASTER_DEFAULT_PORT = 7077  # Spark's MasterArguments default when the command has no --port
VENV_BIN = Path(sys.executable).parent  # .venv/bin here, /opt/venv/bin in the image
SOURCE_DIRS = ("recsys", "dags", "jobs")

# An explicit read of one variable: os.environ["X"], os.environ.get("X"), os.getenv("X"), env.get("X")
# (``env`` being a copy of os.environ, as in recsys.orchestration.airflow_env).
_ENV_READ = re.compile(
    r"""\b(?:os\.environ|os\.getenv|environ|getenv|env)(?:\.get|\.setdefault|\.pop)?\s*[(\[]\s*["'](RECSYS_[A-Z0-9_]+)["']"""
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as Compose reads it (safe_load resolves ``<<: *anchor`` merge keys)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as strings (the mapping form, or the ``KEY=VALUE`` list form)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _container_ports(service: dict[str, Any]) -> set[int]:
    """Container-side ports of ``ports`` entries (``"host:container"`` or ``"container"``)."""
    return {int(str(p).split(":")[-1].split("/")[0]) for p in service.get("ports", [])}


def _option(command: list[str], name: str) -> str | None:
    """The value after ``name`` in a command, or ``None``."""
    return command[command.index(name) + 1] if name in command else None


def _dockerfile() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in text.splitlines():
        if line.strip():
            instruction, _, args = line.strip().partition(" ")
            out.append((instruction.upper(), args.strip()))
    return out


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in _dockerfile():
        if instruction == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
    return env


def _lock_pin(package: str) -> str:
    """The version requirements.lock pins for ``package``."""
    m = re.search(rf"^{re.escape(package)}==(\S+)$", (PROJECT_ROOT / "requirements.lock").read_text(), re.M | re.I)
    assert m, f"{package} is not pinned in requirements.lock"
    return m.group(1)


def _settings_env_names(cls: type[BaseSettings], seen: set[type] | None = None) -> set[str]:
    """Every environment variable a pydantic-settings class reads: env_prefix + field name, sections too.

    A field whose type is itself a settings class (``synthetic``, ``retrieval``, every model
    section) is read whole by the parent (``RECSYS_SYNTHETIC`` as JSON) and field by field by
    the section's own ``env_prefix`` when it builds its default.
    """
    seen = set() if seen is None else seen
    if cls in seen:
        return set()
    seen.add(cls)
    prefix = cls.model_config.get("env_prefix", "")
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        names.add(f"{prefix}{name}".upper())
        kind = field.annotation
        if inspect.isclass(kind) and issubclass(kind, BaseSettings):
            names |= _settings_env_names(kind, seen)
    return names


def _settings_classes() -> list[type[BaseSettings]]:
    """``Settings`` and every settings class defined by a module of recsys/ that uses pydantic-settings."""
    classes: list[type[BaseSettings]] = [Settings]
    for path in sorted((PROJECT_ROOT / "recsys").rglob("*.py")):
        if "BaseSettings" not in path.read_text():
            continue
        module = importlib.import_module(".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts))
        classes += [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, BaseSettings) and obj is not BaseSettings
        ]
    return classes


def recsys_env_reads() -> set[str]:
    """Every ``RECSYS_*`` variable the code reads: settings classes, and explicit reads in recsys/, dags/, jobs/."""
    names: set[str] = set()
    for cls in _settings_classes():
        names |= _settings_env_names(cls)
    for folder in SOURCE_DIRS:
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            names |= set(_ENV_READ.findall(path.read_text()))
    return {n for n in names if n.startswith("RECSYS_")}


def test_the_env_collector_sees_what_the_code_reads():
    """The collector itself finds known settings and explicit reads (else the compose check proves nothing)."""
    reads = recsys_env_reads()
    assert {"RECSYS_HOME", "RECSYS_STORE_URL", "RECSYS_SEED"} <= reads  # Settings fields
    assert {"RECSYS_SYNTHETIC_N_USERS", "RECSYS_RETRIEVAL_INDEX", "RECSYS_CF_EPOCHS"} <= reads  # sections
    assert "RECSYS_MOVIELENS_BASE_URL" in reads  # recsys.data.fetch's own settings class
    assert {"RECSYS_SPARK_MASTER", "RECSYS_SPARK_DRIVER_MEMORY"} <= reads  # os.environ reads (spark.py, the DAG)
    assert "RECSYS_NOT_A_SETTING" not in reads


def test_compose_parses_with_the_four_services(services):
    assert set(services) == SERVICES
    # The merge keys were resolved: the workers got the anchor's build and environment, with overrides.
    worker = services["spark-worker"]
    assert worker["build"] == "." and _env(worker)["RECSYS_HOME"] == "/data"
    assert _env(worker)["SPARK_LOCAL_HOSTNAME"] == "spark-worker"


def test_built_services_use_the_dockerfile(services):
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    assert set(built) == set(RECSYS_SERVICES)
    for name, build in built.items():
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        path = (COMPOSE_FILE.parent / context / dockerfile).resolve()
        assert path == DOCKERFILE and path.is_file(), f"{name} builds from {path}"


def test_depends_on_and_volumes_exist(compose, services):
    for name, service in services.items():
        depends = service.get("depends_on", [])
        assert set(depends) <= SERVICES - {name}, f"{name} depends on {depends}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith((".", "/")) or source in compose.get("volumes", {}), f"{name}: {volume}"


def test_recsys_variables_are_read_by_the_code(services):
    """A RECSYS_* name set by compose or the image that nothing reads is a typo or a leftover."""
    reads = recsys_env_reads()
    for name, service in services.items():
        unknown = {k for k in _env(service) if k.startswith("RECSYS_")} - reads
        assert not unknown, f"{name} sets {sorted(unknown)}, which recsys does not read"
    unknown = {k for k in _dockerfile_env() if k.startswith("RECSYS_")} - reads
    assert not unknown, f"the Dockerfile sets {sorted(unknown)}, which recsys does not read"


def test_the_lake_is_one_volume_shared_by_driver_and_workers(services):
    """RECSYS_HOME is the same named volume in Airflow (the Spark driver) and the Spark services."""
    image_home = _dockerfile_env()["RECSYS_HOME"]
    mounts = set()
    for name in RECSYS_SERVICES:
        home = _env(services[name])["RECSYS_HOME"]
        assert home == image_home, f"{name}: RECSYS_HOME {home} vs the image's {image_home}"
        volume = next((v for v in services[name].get("volumes", []) if v.split(":")[1] == home), None)
        assert volume is not None, f"{name} does not mount a volume at RECSYS_HOME={home}"
        mounts.add(volume.split(":")[0])
    assert len(mounts) == 1, f"RECSYS_HOME is not one shared volume: {mounts}"


def test_spark_master_url_matches_the_master_service(services):
    master = services["spark-master"]
    command = master["command"]
    port = int(_option(command, "--port") or _env(master).get("SPARK_MASTER_PORT", SPARK_MASTER_DEFAULT_PORT))
    host = _option(command, "--host")
    assert host in ("spark-master", master.get("hostname")), f"the master binds to {host}, not its service name"
    assert port in _container_ports(master), f"the master listens on {port} but exposes {master.get('ports')}"
    url = f"spark://spark-master:{port}"
    for name in RECSYS_SERVICES:
        assert _env(services[name])["RECSYS_SPARK_MASTER"] == url, name
    worker_urls = [arg for arg in services["spark-worker"]["command"] if arg.startswith("spark://")]
    assert worker_urls == [url]


def test_spark_master_reaches_the_spark_default_connection(services, monkeypatch):
    """recsys airflow (airflow_env) turns RECSYS_SPARK_MASTER into spark_default; the provider submits to it."""
    from recsys.orchestration import airflow_env

    airflow = services["airflow"]
    env = airflow_env(Path(_env(airflow)["RECSYS_HOME"]), base=_env(airflow))
    assert env["AIRFLOW__API__HOST"] == "0.0.0.0"  # the UI must listen beyond the container's loopback
    assert int(env["AIRFLOW__API__PORT"]) in _container_ports(airflow)
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", env["AIRFLOW_CONN_SPARK_DEFAULT"])
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    hook = SparkSubmitHook(conn_id="spark_default")
    assert hook._connection["master"] == _env(airflow)["RECSYS_SPARK_MASTER"]


def test_store_url_matches_the_postgres_service(services, monkeypatch):
    postgres = services["postgres"]
    pg = _env(postgres)
    url = _env(services["airflow"])["RECSYS_STORE_URL"]
    assert {_env(services[name])["RECSYS_STORE_URL"] for name in RECSYS_SERVICES} == {url}
    parts = urlsplit(url)
    assert (parts.username, parts.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
    assert parts.hostname == "postgres" and parts.path.lstrip("/") == pg["POSTGRES_DB"]
    assert (parts.port or 5432) in _container_ports(postgres)
    assert f"-U {pg['POSTGRES_USER']}" in " ".join(postgres["healthcheck"]["test"])

    # libpq parses it (no connection) ...
    from psycopg.conninfo import conninfo_to_dict

    assert conninfo_to_dict(url) == {
        "user": pg["POSTGRES_USER"],
        "password": pg["POSTGRES_PASSWORD"],
        "host": "postgres",
        "port": str(parts.port or 5432),
        "dbname": pg["POSTGRES_DB"],
    }
    # ... and the store factory routes it to the PostgreSQL store (replaced here so nothing connects).
    from recsys.store import factory

    opened: list[str] = []
    monkeypatch.setattr(factory, "PostgresStore", lambda u, schema=None: opened.append(u) or "pg")
    assert factory.open_store(url) == "pg" and opened == [url]


def test_spark_services_start_classes_of_pyspark(services):
    """spark-class is pyspark's, on the image's PATH, and the classes it starts are in pyspark's spark-core jar."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    assert pyspark.__version__ == _lock_pin("pyspark"), "the venv is not the locked one: these checks would not hold"
    assert (spark_home / "bin" / "spark-class").is_file()
    assert (spark_home / "bin" / "load-spark-env.sh").is_file()
    (core_jar,) = (spark_home / "jars").glob("spark-core_*.jar")
    with zipfile.ZipFile(core_jar) as jar:
        classes = set(jar.namelist())
    for name in ("spark-master", "spark-worker"):
        command = services[name]["command"]
        assert command[0] == "spark-class", name
        assert f"{command[1].replace('.', '/')}.class" in classes, f"{name}: {command[1]} is not in {core_jar.name}"
    assert services["spark-master"]["command"][1] == "org.apache.spark.deploy.master.Master"
    assert services["spark-worker"]["command"][1] == "org.apache.spark.deploy.worker.Worker"
    # How the image finds spark-class: pip installs pyspark's scripts into the venv's bin (/opt/venv/bin,
    # first on the image's PATH); spark-class there sets SPARK_HOME with find_spark_home.py, run by the
    # first python3 on PATH, the venv's. The same resolution, here:
    for script in ("spark-class", "spark-submit", "find-spark-home", "find_spark_home.py"):
        assert (VENV_BIN / script).is_file(), f"pip did not install {script} into {VENV_BIN}"
    found = subprocess.run(
        [str(VENV_BIN / "python3"), str(VENV_BIN / "find_spark_home.py")], capture_output=True, text=True, check=True
    )
    assert Path(found.stdout.strip()).resolve() == spark_home.resolve()


def test_commands_are_on_the_image_path(services):
    env = _dockerfile_env()
    venvs = [
        re.search(r"-m venv (\S+)", args).group(1)
        for instruction, args in _dockerfile()
        if instruction == "RUN" and "-m venv" in args
    ]
    assert len(venvs) == 1, "the Dockerfile should create one virtualenv"
    path = env["PATH"].split(":")
    assert path[0] == f"{venvs[0]}/bin", f"the venv's bin must come first on PATH (python3, spark-class): {path}"
    for name, service in services.items():
        if "command" in service and name in RECSYS_SERVICES:
            program = service["command"][0]
            assert (VENV_BIN / program).is_file(), f"{name} runs {program}, which pip does not install into the venv"


def test_recsys_airflow_is_a_command_of_the_cli(services):
    from typer.main import get_command
    from typer.testing import CliRunner

    from recsys.cli import app

    command = services["airflow"]["command"]
    assert command[:2] == ["recsys", "airflow"]
    assert "airflow" in get_command(app).commands
    result = CliRunner().invoke(app, [*command[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "Airflow standalone" in result.output


def test_image_python_java_and_dependencies_agree_with_the_project():
    instructions = _dockerfile()
    (base,) = [args for instruction, args in instructions if instruction == "FROM"]
    python = re.fullmatch(r"python:(\d+\.\d+)[-.\w]*", base)
    assert python, f"unexpected base image {base}"
    requires = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    from packaging.specifiers import SpecifierSet

    assert python.group(1) in SpecifierSet(requires), f"image Python {python.group(1)} vs requires-python {requires}"

    readme = re.search(r"Needs Python (\d+\.\d+) and Java (\d+)", (PROJECT_ROOT / "README.md").read_text())
    assert readme, "README no longer says which Python and Java the project needs"
    assert python.group(1) == readme.group(1)
    run = " ".join(args for instruction, args in instructions if instruction == "RUN")
    assert re.findall(r"openjdk-(\d+)-", run) == [readme.group(2)], "the image installs another Java"
    java_home = _dockerfile_env().get("JAVA_HOME")
    if java_home is not None:
        assert readme.group(2) in java_home
        assert not re.search(r"amd64|arm64|aarch64|x86_64", java_home), "JAVA_HOME must not depend on the CPU"

    copies = [args.split() for instruction, args in instructions if instruction == "COPY"]
    assert any("requirements.lock" in c[:-1] for c in copies), "the Dockerfile does not copy requirements.lock"
    assert re.search(r"pip install [^&]*-r requirements\.lock", run), "the Dockerfile does not install the lock"
    assert re.search(r"pip install [^&]*--no-deps -e \.", run), "the Dockerfile does not install recsys itself"
    for version in re.findall(r"pyspark (\d+\.\d+\.\d+)", DOCKERFILE.read_text()):
        assert version == _lock_pin("pyspark"), "the Dockerfile's comment names another pyspark"
