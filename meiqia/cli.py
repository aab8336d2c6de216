"""The ``meiqia`` command (DESIGN §10). Every command has help; errors are clear.

Commands that need the application build it with ``create_app`` and run inside
its app context, so they use the same configuration as the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from meiqia import __version__

KB_DIR = Path(__file__).resolve().parent.parent / "knowledge_base"


@contextlib.contextmanager
def app_context(connect: bool = True, **config: Any) -> Iterator[Any]:
    """Create the app (config errors become clean CLI errors) and enter it, with a
    database connection unless ``connect`` is False (opening one creates a SQLite
    file)."""
    from meiqia import create_app
    from meiqia.config import ConfigError
    from meiqia.db import connection
    from meiqia.plugins import PluginLoadError

    try:
        app = create_app()
    except (ConfigError, PluginLoadError) as exc:
        raise click.ClickException(str(exc)) from exc
    app.config.update(config)
    with app.app_context():
        if not connect:
            yield app
            return
        with connection():
            yield app


def _require_schema() -> None:
    from meiqia import migrations
    from meiqia.db import database

    todo = migrations.pending(database.obj)
    if todo:
        raise click.ClickException(
            f"the database needs {len(todo)} migration(s): run `meiqia db upgrade` "
            "(or `meiqia init` for a new instance)"
        )


class MeiqiaGroup(click.Group):
    """Adds plugin commands (``register_commands``) when the group is built."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self._load_plugin_commands()
        return super().get_command(ctx, name)

    _plugins_loaded = False

    def _load_plugin_commands(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        if os.environ.get("MEIQIA_NO_PLUGIN_COMMANDS"):
            return
        try:
            from meiqia.plugins import make_plugin_manager

            instance = os.environ.get("MEIQIA_INSTANCE_PATH") or str(
                Path(__file__).resolve().parent.parent / "instance"
            )
            pm = make_plugin_manager(instance)
            pm.hook.register_commands(cli=self)
        except Exception as exc:  # noqa: BLE001 - `meiqia --help` must still work
            click.echo(f"warning: plugin commands not loaded: {exc}", err=True)


@click.group(cls=MeiqiaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="meiqia")
def cli() -> None:
    """meiqia: self-hosted, bot-first customer service.

    Configuration comes from instance/config.py and MEIQIA_* environment
    variables (MEIQIA_DATABASE_URL, MEIQIA_REDIS_URL, ...).
    """


# --- init, run, worker ---------------------------------------------------------------


@cli.command()
@click.option("--team", "team_name", default="演示团队", show_default=True, help="Team name.")
@click.option("--email", default="admin@example.com", show_default=True, help="First admin's email.")
@click.option("--name", default="管理员", show_default=True, help="First admin's real name.")
@click.option("--password", default=None, help="First admin's password (default: generated and printed once).")
@click.option("--demo-kb/--no-demo-kb", default=True, show_default=True, help="Import the demo knowledge base.")
def init(team_name: str, email: str, name: str, password: str | None, demo_kb: bool) -> None:
    """Create the instance: folder, secret key, database, first admin, demo KB.

    Safe to run again: an instance that already has a team is left as it is.
    """
    from meiqia.services import accounts
    from meiqia.services.errors import ServiceError

    generated = password is None
    password = password or _generated_password()
    first_admin = {"team_name": team_name, "name": name, "email": email, "password": password}
    with app_context(connect=False) as app:
        # Refuse bad input before the database exists: a failed init must not leave
        # an empty database behind that a later `make run` takes for a finished one.
        try:
            accounts.check(first_admin, accounts.REGISTER_SCHEMA)
            accounts.check_password(password)
        except ServiceError as exc:
            raise click.ClickException(exc.message) from exc
        _init_database(app, first_admin, generated, demo_kb)


def _init_database(app: Any, first_admin: dict[str, str], generated: bool,
                   demo_kb: bool) -> None:
    from meiqia import migrations
    from meiqia.db import connection
    from meiqia.db import database
    from meiqia.models import Team
    from meiqia.services import accounts
    from meiqia.services.errors import ServiceError

    with connection():
        click.echo(f"instance folder: {app.instance_path}")
        applied = migrations.upgrade(database.obj, echo=lambda m: click.echo(f"database: {m}"))
        if not applied:
            click.echo("database: up to date")
        if Team.select().exists():
            click.echo("a team exists already: nothing else to do")
            return
        try:
            agent = accounts.register_team(first_admin)
        except ServiceError as exc:
            raise click.ClickException(exc.message) from exc
        click.echo(f"team: {agent.team.name} (id {agent.team_id})")
        click.echo(f"admin: {agent.email}")
        if generated:
            click.secho(f"password: {first_admin['password']}   (shown once: write it down)",
                        fg="yellow")
        if demo_kb:
            _import_demo_kb(agent)


def _generated_password() -> str:
    return secrets.token_urlsafe(9) + "-7a"


def _import_demo_kb(agent: Any) -> None:
    try:
        from meiqia.services import knowledge
    except ImportError:
        click.echo("knowledge base: not available in this build")
        return
    lang = agent.team.language
    path = KB_DIR / ("shop.en.yaml" if lang == "en" else "shop.zh-CN.yaml")
    if not path.exists():
        click.echo(f"knowledge base: {path} not found, skipped")
        return
    report = knowledge.import_file(agent.team, path)
    click.echo(f"knowledge base: {report['created']} entries imported from {path.name}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
@click.option("--dev", is_flag=True, help="Debug mode with the auto-reloader.")
def run(host: str, port: int, dev: bool) -> None:
    """Serve meiqia (threaded server, websockets included).

    For production use gunicorn as docs/deploy.md shows.
    """
    from meiqia import create_app
    from meiqia.config import ConfigError
    from meiqia.plugins import PluginLoadError

    try:
        app = create_app()
    except (ConfigError, PluginLoadError) as exc:
        raise click.ClickException(str(exc)) from exc
    with app.app_context():
        from meiqia.db import connection

        with connection():
            _require_schema()
    click.echo(f"meiqia {__version__} on http://{host}:{port}/  (Ctrl+C to stop)")
    app.run(host=host, port=port, debug=dev, use_reloader=dev, threaded=True)


@cli.command()
@click.option("--burst", is_flag=True, help="Run the jobs waiting now, then exit.")
def worker(burst: bool) -> None:
    """Run background jobs from Redis (needs MEIQIA_REDIS_URL).

    In the embedded default, jobs run in the web process and no worker is needed.
    """
    with app_context() as app:
        if not app.config["REDIS_URL"]:
            raise click.ClickException(
                "no MEIQIA_REDIS_URL: the embedded default runs jobs in the web "
                "process, so there is nothing for a worker to do"
            )
        import redis
        from rq import Worker

        from meiqia.db import database

        # Blocking dequeues need a client without the web process's short timeouts.
        client = redis.Redis.from_url(app.config["REDIS_URL"])
        queue_name = app.extensions["meiqia.jobs"].name
        database.close()
        click.echo(f"worker listening on {queue_name}")
        Worker([queue_name], connection=client).work(burst=burst, with_scheduler=True)


# --- db ---------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations (keeps all data)."""
    from meiqia import migrations
    from meiqia.db import database

    with app_context():
        applied = migrations.upgrade(database.obj, echo=click.echo)
        click.echo("up to date" if not applied else f"{len(applied)} migration(s) done")


@db.command("status")
def db_status() -> None:
    """List pending migrations."""
    from meiqia import migrations
    from meiqia.db import database

    with app_context():
        todo = migrations.pending(database.obj)
        click.echo("up to date" if not todo else "pending: " + ", ".join(todo))


# --- knowledge base and bot ----------------------------------------------------------


def _team(team_id: int | None) -> Any:
    from meiqia.models import Team

    team = (
        Team.get_or_none(Team.id == team_id)
        if team_id
        else Team.select().order_by(Team.id).first()
    )
    if team is None:
        raise click.ClickException("no such team: run `meiqia init` first")
    return team


def _kb_error(exc: Exception) -> click.ClickException:
    return click.ClickException(f"{exc}\nnothing was imported")


@cli.group()
def kb() -> None:
    """Knowledge base: import, export, reindex."""


@kb.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--team", "team_id", type=int, default=None, help="Team id (default: the first team).")
@click.option("--replace", is_flag=True, help="Remove entries that are not in the file.")
def kb_import(path: str, team_id: int | None, replace: bool) -> None:
    """Import a KB file: YAML (knowledge_base/*.yaml), CSV or XLSX (id,question,answer).

    The file lands whole or not at all; errors name their line numbers.
    """
    from meiqia.bot.kbfile import KBFileError
    from meiqia.services import knowledge

    with app_context():
        _require_schema()
        team = _team(team_id)
        try:
            report = knowledge.import_file(team, path, replace=replace)
        except KBFileError as exc:
            raise _kb_error(exc) from exc
    click.echo(
        f"{report['total']} entries read: {report['created']} created, "
        f"{report['updated']} updated, {report['removed']} removed"
    )


@kb.command("export")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
@click.option("--team", "team_id", type=int, default=None)
def kb_export(path: str, team_id: int | None) -> None:
    """Export the KB to PATH; the format follows the ending (.yaml, .csv, .xlsx)."""
    from meiqia.bot import kbfile
    from meiqia.services import knowledge

    writers = {".yaml": kbfile.write_yaml, ".yml": kbfile.write_yaml,
               ".csv": kbfile.write_csv, ".xlsx": kbfile.write_xlsx}
    writer = writers.get(Path(path).suffix.lower())
    if writer is None:
        raise click.ClickException("PATH must end in .yaml, .csv or .xlsx")
    with app_context():
        _require_schema()
        entries = knowledge.export_entries(_team(team_id).id)
    writer(entries, path)
    click.echo(f"{len(entries)} entries written to {path}")


@kb.command("reindex")
@click.option("--team", "team_id", type=int, default=None)
def kb_reindex(team_id: int | None) -> None:
    """Rebuild the team's bot index now and report its size and build time."""
    import time

    from meiqia.services import knowledge

    with app_context():
        _require_schema()
        team = _team(team_id)
        knowledge.forget_indexes()
        started = time.perf_counter()
        with click.progressbar(length=1, label="building index") as bar:
            index = knowledge.index_for(team.id)
            bar.update(1)
        elapsed = time.perf_counter() - started
    click.echo(f"{len(index)} entries indexed in {elapsed:.2f} s")


@cli.group()
def bot() -> None:
    """The knowledge-base bot: evaluate it, ask it."""


@bot.command("eval")
@click.option("--kb", "kb_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="KB file (YAML, CSV or XLSX).")
@click.option("--cases", "cases_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="CSV with query,expected_id (empty expected_id: out of scope).")
@click.option("--answer-threshold", type=float, default=None)
@click.option("--suggest-threshold", type=float, default=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bot_eval(kb_path: str, cases_path: str, answer_threshold: float | None,
             suggest_threshold: float | None, as_json: bool) -> None:
    """Answer every case with an index built from the KB and print the metrics.

    n, in_scope_accuracy, oos_recall, oos_precision, suggest_rate, p50_ms,
    p99_ms, build_s (DESIGN §6).
    """
    from meiqia.bot.evaluate import evaluate
    from meiqia.bot.evaluate import format_report
    from meiqia.bot.kbfile import KBFileError

    try:
        result = evaluate(kb_path, cases_path, answer_threshold=answer_threshold,
                          suggest_threshold=suggest_threshold)
    except (KBFileError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
    else:
        click.echo(format_report(result))


@bot.command("ask")
@click.argument("question")
@click.option("--kb", "kb_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Ask a KB file instead of the team's knowledge base.")
@click.option("--team", "team_id", type=int, default=None)
@click.option("-k", "top", type=int, default=3, show_default=True, help="Candidates to show.")
def bot_ask(question: str, kb_path: str | None, team_id: int | None, top: int) -> None:
    """Ask the bot one question and show its decision and top candidates."""
    from meiqia.bot.index import KBIndex
    from meiqia.bot.kbfile import load_kb

    if kb_path:
        from meiqia.bot.index import DEFAULT_ANSWER_THRESHOLD
        from meiqia.bot.index import DEFAULT_SUGGEST_THRESHOLD

        index = KBIndex(load_kb(kb_path))
        answer_t, suggest_t = DEFAULT_ANSWER_THRESHOLD, DEFAULT_SUGGEST_THRESHOLD
    else:
        from meiqia.services import knowledge
        from meiqia.services.teams import settings_of

        with app_context():
            _require_schema()
            team = _team(team_id)
            index = knowledge.index_for(team.id)
            settings = settings_of(team)
            answer_t, suggest_t = settings["answer_threshold"], settings["suggest_threshold"]
    candidates = index.query(question, k=top)
    decision = index.decide(candidates, answer_t, suggest_t)
    click.echo(f"decision: {decision.kind}")
    for c in candidates:
        click.echo(f"  {c.score:.3f}  [{c.entry_id}] {c.matched_question}")
    if decision.kind == "answer" and candidates:
        click.echo(f"answer: {candidates[0].answer}")


# --- agents and plugins -------------------------------------------------------------


@cli.group()
def agent() -> None:
    """Manage agents."""


@agent.command("create")
@click.option("--email", required=True, help="Login email (unique).")
@click.option("--name", required=True, help="Real name.")
@click.option("--password", default=None, help="Default: generated and printed once.")
@click.option("--role", type=click.Choice(["admin", "agent"]), default="agent", show_default=True,
              help="admin: manages the team; agent: handles conversations.")
@click.option(
    "--scope", type=click.Choice(["self", "groups", "all", "custom"]), default="self",
    show_default=True,
    help="Whose conversations and figures the agent sees: his own, his groups', everyone's, "
         "or the agents and groups given with --scope-agent/--scope-group.",
)
@click.option("--scope-agent", "scope_agents", type=int, multiple=True,
              help="With --scope custom: an agent id he may see (repeat for more).")
@click.option("--scope-group", "scope_groups", type=int, multiple=True,
              help="With --scope custom: a group id he may see (repeat for more).")
@click.option("--group", "groups", type=int, multiple=True,
              help="A group id he belongs to (repeat for more).")
@click.option("--max-concurrent", type=int, default=5, show_default=True, help="接待上限; 0 = no automatic assignment.")
@click.option("--team", "team_id", type=int, default=None, help="Team id (default: the first team).")
def agent_create(email: str, name: str, password: str | None, role: str, scope: str,
                 scope_agents: tuple[int, ...], scope_groups: tuple[int, ...],
                 groups: tuple[int, ...], max_concurrent: int, team_id: int | None) -> None:
    """Create an agent (as the team's first admin)."""
    from meiqia.models import Agent
    from meiqia.models import Team
    from meiqia.services import accounts
    from meiqia.services.errors import ServiceError

    with app_context():
        _require_schema()
        team = Team.get_or_none(Team.id == team_id) if team_id else Team.select().order_by(Team.id).first()
        if team is None:
            raise click.ClickException("no such team: run `meiqia init` first")
        admin = Agent.select().where(Agent.team == team, Agent.role == "admin").order_by(Agent.id).first()
        generated = password is None
        password = password or _generated_password()
        if (scope_agents or scope_groups) and scope != "custom":
            raise click.UsageError("--scope-agent and --scope-group need --scope custom")
        fields: dict[str, Any] = {"email": email, "name": name, "password": password,
                                  "role": role, "scope": scope,
                                  "max_concurrent": max_concurrent}
        if scope == "custom":
            fields.update(scope_agents=list(scope_agents), scope_groups=list(scope_groups))
        if groups:
            fields["groups"] = list(groups)
        try:
            created = accounts.create_agent(admin, fields)
        except ServiceError as exc:
            raise click.ClickException(exc.message) from exc
        click.echo(f"agent {created.id}: {created.email} ({created.role}, scope {created.scope})")
        if created.scope == "custom":
            shown = accounts.agent_to_dict(created)
            click.echo(f"  sees agents {shown.get('scope_agents') or '-'}, "
                       f"groups {shown.get('scope_groups') or '-'}")
        if generated:
            click.secho(f"password: {password}   (shown once)", fg="yellow")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List every plugin (built-in, entry point, instance/plugins) and its hooks."""
    with app_context() as app:
        rows = app.extensions["meiqia.plugins"].describe()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    width = max(len(row["name"]) for row in rows) if rows else 10
    for row in rows:
        click.echo(f"{row['name']:<{width}}  {row['origin']:<11}  {', '.join(row['hooks'])}")


def main() -> None:
    cli(prog_name="meiqia")


if __name__ == "__main__":
    sys.exit(main())
