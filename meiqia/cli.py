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


def _create_app() -> Any:
    """The app, or one line saying why it cannot start: a bad setting, a plugin
    that does not load, or one whose ``startup`` failed under
    ``PLUGIN_STARTUP_FAILURE = "refuse"`` (no traceback: the line names the
    plugin and its error)."""
    from meiqia import create_app
    from meiqia.config import ConfigError
    from meiqia.plugins import PluginLoadError
    from meiqia.plugins import PluginStartupError

    try:
        return create_app()
    except (ConfigError, PluginLoadError, PluginStartupError) as exc:
        raise click.ClickException(str(exc)) from exc


@contextlib.contextmanager
def app_context(connect: bool = True, **config: Any) -> Iterator[Any]:
    """Create the app (config errors become clean CLI errors) and enter it, with a
    database connection unless ``connect`` is False (opening one creates a SQLite
    file)."""
    app = _create_app()
    app.config.update(config)
    with app.app_context():
        if not connect:
            yield app
            return
        with database_connection(app):
            yield app


@contextlib.contextmanager
def database_connection(app: Any) -> Iterator[None]:
    """A connection for the command, or one line saying why there is none (exit 1).

    A database that does not answer, or refuses the login, made ``meiqia init``,
    ``db status`` and the other commands print the driver's traceback (80 lines)
    while ``db upgrade`` said it in one; each command says it in one line now,
    naming the database by its URL with the password masked.
    """
    import peewee

    from meiqia.db import connection

    with contextlib.ExitStack() as held:
        try:
            held.enter_context(connection())
        except (peewee.DatabaseError, peewee.InterfaceError) as exc:
            url = app.config["DATABASE_URL"]
            raise click.ClickException(
                f"cannot connect to the database {_masked_url(url)}: "
                f"{_one_line(exc, url)}") from exc
        yield


def _masked_url(url: str) -> str:
    """``url`` with its password, if any, as ``***``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0]
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


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
        self._warn_plugin_problems()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "worker":
            # Plugins' commands are not loaded for it: `meiqia worker` only starts and
            # watches its worker loops, and must stay light (each loop loads them).
            return super().get_command(ctx, name)
        self._load_plugin_commands()
        command = super().get_command(ctx, name)
        if command is None:
            # Perhaps the command of a plugin that did not load: say which. A command
            # that is found builds the app, whose own error names the plugin (once).
            self._warn_plugin_problems()
        return command

    _plugins_loaded = False
    _plugin_problems: tuple[str, ...] = ()
    _problems_told = False

    def _warn_plugin_problems(self) -> None:
        if self._problems_told:
            return
        self._problems_told = True
        for problem in self._plugin_problems:
            click.echo(f"warning: plugin commands not loaded: {problem}", err=True)

    def _load_plugin_commands(self) -> None:
        """The commands of the plugins the application loads (the same settings:
        PLUGINS, DISABLED_PLUGINS, ENTRY_POINT_PLUGINS, from instance/config.py and
        MEIQIA_*). A plugin that fails to load is named and left out; the others'
        commands are there."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        if os.environ.get("MEIQIA_NO_PLUGIN_COMMANDS"):
            return
        problems: list[Exception] = []
        try:
            from flask import Flask

            from meiqia import config as config_module
            from meiqia.plugins import make_plugin_manager

            # The instance path and configuration create_app uses.
            app = Flask("meiqia", instance_relative_config=True,
                        instance_path=os.environ.get("MEIQIA_INSTANCE_PATH") or None)
            config_module.load(app)
            pm = make_plugin_manager(
                app.instance_path,
                modules=app.config["PLUGINS"],
                disabled=app.config["DISABLED_PLUGINS"],
                entry_points=app.config["ENTRY_POINT_PLUGINS"],
                on_error=problems.append,
            )
        except Exception as exc:  # noqa: BLE001 - `meiqia --help` must still work
            self._plugin_problems = (str(exc),)
            return
        ours = set(self.commands)
        for impl in reversed(pm.hook.register_commands.get_hookimpls()):
            try:
                impl.function(**{arg: self for arg in impl.argnames if arg == "cli"})
            except Exception as exc:  # noqa: BLE001 - the other plugins' commands stay
                problems.append(RuntimeError(
                    f"plugin {pm.plugin_name(impl.plugin)!r}: register_commands raised "
                    f"{type(exc).__name__}: {exc}"))
        self._plugin_problems = tuple(str(problem) for problem in problems)
        for name, command in self.commands.items():
            if name not in ours:
                _run_in_app_context(command)


def _run_in_app_context(command: click.Command) -> None:
    """Run a plugin's command (and a group's subcommands) inside the application's
    context with a database connection, as meiqia's own commands run (``app_context``):
    ``current_app``, ``meiqia.channels.host_for`` and the models work in it, and so does
    Flask's ``with_appcontext``, which finds the app already there. The app is made
    when the command runs, not for ``--help``."""
    invoke = command.invoke

    def invoke_in_app(ctx: click.Context) -> Any:
        from flask import has_app_context

        if has_app_context():  # a nested invoke: the context is there already
            return invoke(ctx)
        with app_context():
            return invoke(ctx)

    command.invoke = invoke_in_app  # type: ignore[method-assign]


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
    from meiqia.db import database
    from meiqia.models import Team
    from meiqia.services import accounts
    from meiqia.services.errors import ServiceError

    with database_connection(app):
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
    click.echo(f"knowledge base: {_entries(report['created'])} imported from {path.name}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="MEIQIA_HOST",
              help="Address to listen on (0.0.0.0: every interface); or MEIQIA_HOST.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535),
              envvar="MEIQIA_PORT", help="Port to listen on (0: any free one); or MEIQIA_PORT.")
@click.option("--dev", is_flag=True, help="Debug mode with the auto-reloader.")
def run(host: str, port: int, dev: bool) -> None:
    """Serve meiqia: one process with gevent's server, websockets included.

    Thousands of sockets and a small team's messages on SQLite, with nothing else
    to install; --dev serves with Werkzeug's threads and its reloader instead.
    For production use gunicorn as docs/deploy.md shows.
    """
    app = _create_app()
    with app.app_context(), database_connection(app):
        _require_schema()
    if app.config["BOT_WARM_UP"]:
        from meiqia.services import knowledge

        knowledge.warm_up(app)
    app.extensions["meiqia.jobs"].start()  # the embedded queue resumes its recorded jobs
    banner = ("meiqia {version} on http://{host}:{port}/  (Ctrl+C to stop; "
              "for production, gunicorn: docs/deploy.md)")
    if dev:
        click.echo(banner.format(version=__version__, host=host, port=port))
        app.run(host=host, port=port, debug=True, use_reloader=True, threaded=True)
        return
    # Werkzeug and gevent answer a taken port with their own words; ours name the way out.
    import socket

    try:
        socket.create_server((host, port)).close()
    except OSError as exc:  # the port is taken, or the address is not ours
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another port "
            "with --port or MEIQIA_PORT (or `make run PORT=8080`)") from exc
    from meiqia.channels import registry as channel_registry

    channel_registry.autostart(app)  # mailbox readers run now, not from the first request
    from meiqia import embedded_server

    if embedded_server.is_patched():
        # gevent's server: thousands of sockets on one thread (meiqia/embedded_server.py).
        server = embedded_server.make_server(host, port, app)
        click.echo(banner.format(version=__version__, host=host, port=server.server_port))
        embedded_server.serve(server)
        return
    # Not patched (click's test runner calls this in a plain process): the same
    # threaded werkzeug server app.run starts, without its four-line banner
    # repeating the line above (issue 17: `make run` says what it does in a few lines).
    from werkzeug.serving import make_server

    server = make_server(host, port, app, threaded=True)
    # The port it really took (--port 0 asks the system for a free one).
    click.echo(banner.format(version=__version__, host=host, port=server.server_port))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _config_only() -> Any:
    """The configuration as ``create_app`` reads and checks it (defaults, the
    instance's config.py, ``MEIQIA_*``) with logging set up as there, and nothing
    else: no database, hub, job queue or plugins."""
    import logging

    from flask import Flask

    from meiqia import config as config_module
    from meiqia import log_redaction
    from meiqia.config import ConfigError

    instance_path = os.environ.get("MEIQIA_INSTANCE_PATH") or None
    app = Flask("meiqia", instance_relative_config=True, instance_path=instance_path)
    try:
        config_module.load(app)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log_redaction.install()
    return app.config


def _require_redis_url(config: Any) -> None:
    if not config["REDIS_URL"]:
        raise click.ClickException(
            "no MEIQIA_REDIS_URL: the embedded default runs jobs in the web "
            "process, so there is nothing for a worker to do"
        )


@cli.command()
@click.option("--burst", is_flag=True, help="Run the jobs waiting now, then exit.")
@click.option("--queue", "kind", type=click.Choice(["urgent", "default"]), default=None,
              help="Run one worker loop on this queue class only, in this process.")
def worker(burst: bool, kind: str | None) -> None:
    """Run background jobs from Redis (needs MEIQIA_REDIS_URL).

    In the embedded default, jobs run in the web process and no worker is needed.
    Runs JOB_URGENT_WORKERS (1) worker loops on the urgent queue (customers'
    channel replies, reply e-mails) and one on the default queue, each in a process
    of its own, and starts again one that dies. Survives Redis outages (waits and
    starts again) and, every JOB_RECOVER_SECONDS, re-runs jobs whose worker died and
    re-queues jobs Redis lost (docs/deploy.md).
    """
    if kind is None and not burst:
        # This process only starts and watches the loops: the configuration, and
        # no app, database, hub or rq (each loop holds ~190 MB; this one ~47 MB).
        from meiqia import job_supervisor

        config = _config_only()
        _require_redis_url(config)
        plan = job_supervisor.loop_plan(config)
        click.echo("worker: " + ", ".join(
            f"{plan.count(k)} loop(s) on {config['REDIS_PREFIX']}-{k}"
            for k in dict.fromkeys(plan)))
        code = job_supervisor.supervise(config)
        if code:
            sys.exit(code)
        return
    from meiqia import job_supervisor
    from meiqia import job_worker

    if kind is not None:
        job_supervisor.die_with_parent()
    with app_context() as app:
        _require_redis_url(app.config)
        queue = app.extensions["meiqia.jobs"]
        names = [queue.queues[kind].name] if kind is not None else queue.names
        click.echo(f"worker listening on {', '.join(names)}")
        job_worker.run(app, burst=burst, kind=kind)
    if not burst:
        # Stopped (SIGTERM/SIGINT, rq's warm shutdown: no job is running now). Exit
        # at once: the interpreter would otherwise wait for this process's
        # background threads (a knowledge base's index build and calibration, the
        # plugins' notification pools), and under load a service manager's
        # timeout killed the worker (-9) after a clean stop. Jobs are durable;
        # an index is built again by whoever needs it.
        import logging
        import os

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


# --- db ---------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations (keeps all data).

    Safe to run on several hosts at once: the others wait for the first, then
    find the database up to date. A failure is one line (a migration that fails
    leaves nothing of itself behind), exit status 1.
    """
    from meiqia import migrations
    from meiqia.db import database

    url = None
    try:
        with app_context() as app:
            url = app.config["DATABASE_URL"]
            applied = migrations.upgrade(database.obj, echo=click.echo)
    except click.ClickException:
        raise
    except Exception as exc:  # noqa: BLE001 - an operator's command: a reason, no traceback
        raise click.ClickException(f"database upgrade failed: {_one_line(exc, url)}") from exc
    click.echo("up to date" if not applied else f"{len(applied)} migration(s) done")


def _one_line(exc: BaseException, url: str | None = None) -> str:
    """``Type: first line of the message`` (a driver's error spans several lines),
    without the password of the database ``url`` should the driver repeat it."""
    from urllib.parse import unquote
    from urllib.parse import urlsplit

    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    password = urlsplit(url).password if url else None
    for secret in {password, unquote(password or "")} - {None, ""}:
        text = text.replace(secret, "***")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
        raise click.ClickException(
            f"no team with id {team_id}" if team_id else "no team yet: run `meiqia init` first")
    return team


def _kb_error(exc: Exception) -> click.ClickException:
    return click.ClickException(f"{exc}\nnothing was imported")


TEAM_HELP = "Team id (default: the first team)."


def _team_admin(team_id: int | None) -> Any:
    """The team's first admin: the CLI edits entries as him (the audit log says so)."""
    from meiqia.models import Agent

    team = _team(team_id)
    admin = (Agent.select().where(Agent.team == team.id, Agent.role == "admin")
             .order_by(Agent.id).first())
    if admin is None:
        raise click.ClickException(f"team {team.id} has no admin to act as")
    return admin


def _entry_by_key(admin: Any, key: str) -> Any:
    from meiqia.models import KnowledgeEntry

    entry = KnowledgeEntry.get_or_none(KnowledgeEntry.team == admin.team_id,
                                       KnowledgeEntry.key == key)
    if entry is None:
        raise click.ClickException(
            f"no entry with the key {key!r} in team {admin.team_id} "
            "(`meiqia kb list` shows the keys)")
    return entry


def _entries(n: int) -> str:
    """"1 entry", "42 entries"."""
    return f"{n} {'entry' if n == 1 else 'entries'}"


def _answer_text(answer: str | None) -> str | None:
    """``-`` reads the answer from standard input (long answers, links, images)."""
    if answer == "-":
        return sys.stdin.read().strip()
    return answer


@contextlib.contextmanager
def _service_errors() -> Iterator[None]:
    """A refused edit becomes a CLI error with the API's message (field: reason)."""
    from meiqia.services.errors import ServiceError

    try:
        yield
    except ServiceError as exc:
        raise click.ClickException(exc.message) from exc


def _show_entry(entry: Any, verb: str) -> None:
    state = "" if entry.enabled else ", disabled"
    click.echo(f"{verb} entry {entry.key} (id {entry.id}{state}): {entry.questions[0]}")
    for question in entry.questions[1:]:
        click.echo(f"  also: {question}")


@cli.group()
def kb() -> None:
    """Knowledge base: entries one by one, import, export, reindex.

    Entries are named by their key (the id in KB files, such as
    return-shipping-fee). Edits go through the same checks as the API and
    reach running servers within a second.
    """


@kb.command("list")
@click.option("--search", "q", default="", help="Only entries whose questions or answer "
              "contain this text, or whose key it is.")
@click.option("--category", default="", help="Only entries of this category.")
@click.option("--team", "team_id", type=int, default=None, help=TEAM_HELP)
def kb_list(q: str, category: str, team_id: int | None) -> None:
    """List the entries: key, state, category and standard question."""
    from meiqia.services import knowledge

    with app_context():
        _require_schema()
        admin = _team_admin(team_id)
        page, shown = 1, 0
        while True:
            found = knowledge.list_entries(admin, q=q, category=category, page=page,
                                           per_page=200)
            for item in found["items"]:
                state = "on " if item["enabled"] else "off"
                click.echo(f"{item['key']}  {state}  [{item['category'] or '-'}]  "
                           f"{item['standard_question']}")
            shown += len(found["items"])
            if shown >= found["total"] or not found["items"]:
                break
            page += 1
    click.echo(_entries(found['total']))


@kb.command("add")
@click.option("--question", "questions", multiple=True, required=True,
              help="A question; the first is the standard question, repeat the option for "
              "similar questions.")
@click.option("--answer", required=True, help="The answer (text, [links](https://…) and "
              "![images](https://…)); - reads it from standard input.")
@click.option("--key", default=None, help="The entry's key (letters, digits, . _ -; "
              "default: made from the standard question).")
@click.option("--category", default="", help="Category, such as 售后 or shipping.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeat for more).")
@click.option("--disabled", is_flag=True, help="Add it switched off (the bot ignores it).")
@click.option("--team", "team_id", type=int, default=None, help=TEAM_HELP)
def kb_add(questions: tuple[str, ...], answer: str, key: str | None, category: str,
           tags: tuple[str, ...], disabled: bool, team_id: int | None) -> None:
    """Add one entry."""
    from meiqia.services import knowledge

    data: dict[str, Any] = {"questions": list(questions), "answer": _answer_text(answer),
                            "category": category, "tags": list(tags), "enabled": not disabled}
    if key:
        data["key"] = key
    with app_context():
        _require_schema()
        admin = _team_admin(team_id)
        with _service_errors():
            entry = knowledge.create_entry(admin, data)
        _show_entry(entry, "added")


@kb.command("edit")
@click.argument("key")
@click.option("--question", "questions", multiple=True,
              help="Replace the questions: the first is the standard question (repeat the "
              "option for similar ones).")
@click.option("--add-question", "added", multiple=True,
              help="Add a similar question, keeping the others (repeat for more).")
@click.option("--answer", default=None, help="The new answer; - reads it from standard input.")
@click.option("--category", default=None, help="The new category (\"\" for none).")
@click.option("--tag", "tags", multiple=True, help="Replace the tags (repeat for more).")
@click.option("--team", "team_id", type=int, default=None, help=TEAM_HELP)
def kb_edit(key: str, questions: tuple[str, ...], added: tuple[str, ...], answer: str | None,
            category: str | None, tags: tuple[str, ...], team_id: int | None) -> None:
    """Change the entry KEY: only what is given changes."""
    from meiqia.services import knowledge

    with app_context():
        _require_schema()
        admin = _team_admin(team_id)
        entry = _entry_by_key(admin, key)
        data: dict[str, Any] = {}
        if questions or added:
            data["questions"] = [*(questions or entry.questions), *added]
        if answer is not None:
            data["answer"] = _answer_text(answer)
        if category is not None:
            data["category"] = category
        if tags:
            data["tags"] = list(tags)
        if not data:
            raise click.UsageError("nothing to change: give --question, --add-question, "
                                   "--answer, --category or --tag")
        with _service_errors():
            entry = knowledge.update_entry(admin, entry.id, data)
        _show_entry(entry, "changed")


def _switch(key: str, team_id: int | None, enabled: bool) -> None:
    from meiqia.services import knowledge

    with app_context():
        _require_schema()
        admin = _team_admin(team_id)
        entry = _entry_by_key(admin, key)
        with _service_errors():
            entry = knowledge.update_entry(admin, entry.id, {"enabled": enabled})
        _show_entry(entry, "enabled" if enabled else "disabled")


@kb.command("enable")
@click.argument("key")
@click.option("--team", "team_id", type=int, default=None, help=TEAM_HELP)
def kb_enable(key: str, team_id: int | None) -> None:
    """Switch the entry KEY on: the bot answers with it again."""
    _switch(key, team_id, True)


@kb.command("disable")
@click.argument("key")
@click.option("--team", "team_id", type=int, default=None, help=TEAM_HELP)
def kb_disable(key: str, team_id: int | None) -> None:
    """Switch the entry KEY off: kept, but the bot no longer answers with it."""
    _switch(key, team_id, False)


@kb.command("delete")
@click.argument("key")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--team", "team_id", type=int, default=None, help=TEAM_HELP)
def kb_delete(key: str, yes: bool, team_id: int | None) -> None:
    """Delete the entry KEY (kb disable keeps it instead)."""
    from meiqia.services import knowledge

    with app_context():
        _require_schema()
        admin = _team_admin(team_id)
        entry = _entry_by_key(admin, key)
        if not yes:
            click.confirm(f"delete {entry.key} ({entry.questions[0]})?", abort=True)
        with _service_errors():
            knowledge.delete_entry(admin, entry.id)
    click.echo(f"deleted entry {key}")


@kb.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--team", "team_id", type=int, default=None, help=TEAM_HELP)
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
        f"{_entries(report['total'])} read: {report['created']} created, "
        f"{report['updated']} updated, {report['removed']} removed"
    )


@kb.command("export")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
@click.option("--team", "team_id", type=int, default=None, help=TEAM_HELP)
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
    click.echo(f"{_entries(len(entries))} written to {path}")


@kb.command("reindex")
@click.option("--team", "team_id", type=int, default=None, help=TEAM_HELP)
def kb_reindex(team_id: int | None) -> None:
    """Rebuild the team's bot index, showing its progress, and make servers follow.

    Running servers rebuild theirs in the background when they see the new KB
    version (they keep answering meanwhile).
    """
    from meiqia.services import knowledge

    steps = 1000
    with app_context():
        _require_schema()
        team = _team(team_id)
        with click.progressbar(length=steps, label="building the index", show_percent=True,
                               item_show_func=lambda message: message) as bar:
            last: list[str] = []

            def progress(fraction: float, message: str) -> None:
                bar.update(max(0, round(fraction * steps) - bar.pos), message)
                if not sys.stdout.isatty() and message not in last:
                    last.append(message)  # no bar without a terminal: one line a step
                    click.echo(f"{fraction:4.0%}  {message}")

            result = knowledge.rebuild_index(team.id, progress=progress)
    click.echo(f"{_entries(result['entries'])} ({result['variants']} questions) indexed in "
               f"{result['build_s']:.2f} s; KB version {result['version']}")


@cli.group()
def bot() -> None:
    """The knowledge-base bot: evaluate it, ask it."""


@bot.command("eval")
@click.option("--kb", "kb_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="KB file (YAML, CSV or XLSX).")
@click.option("--cases", "cases_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="CSV with query,expected_id (empty expected_id: out of scope).")
@click.option("--answer-threshold", type=float, default=None,
              help="Score at or above which the bot answers (default: 0.7, as a new team).")
@click.option("--suggest-threshold", type=float, default=None,
              help="Score at or above which it offers \"did you mean\"; below, the question "
              "is unrecognised (default: 0.5).")
@click.option("--target-precision", type=float, default=0.95, show_default=True,
              help="Precision of direct answers the index calibrates itself for.")
@click.option("--no-calibration", is_flag=True,
              help="Keep the default score scale (do not calibrate on the KB).")
@click.option("--details", "details_path", type=click.Path(dir_okay=False), default=None,
              help="Write one CSV row per case: query, expected, decision, top 3 with scores.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (exact values).")
def bot_eval(kb_path: str, cases_path: str, answer_threshold: float | None,
             suggest_threshold: float | None, target_precision: float, no_calibration: bool,
             details_path: str | None, as_json: bool) -> None:
    """Answer every case with an index built (and calibrated) from the KB and
    print the metrics.

    n, in_scope_accuracy, oos_recall, oos_precision, suggest_rate, p50_ms,
    p99_ms, build_s (DESIGN §6), then top1_accuracy, answer_precision (share
    of direct answers that are right), coverage (share of in-scope questions
    answered right directly), suggest_precision and the thresholds, the CPU
    time per question (cpu_p50_ms, cpu_p99_ms) and oos_curve (in-scope accuracy
    at each out-of-scope recall the suggest threshold can reach). A ratio
    without a denominator is null.
    """
    from meiqia.bot.evaluate import METRICS
    from meiqia.bot.evaluate import evaluate_details
    from meiqia.bot.evaluate import format_report
    from meiqia.bot.kbfile import KBFileError

    # The bot as it answers visitors (services.bot.ask): every plugin's answerer
    # too, within its budget, with the KB file's index in the team KB's place.
    with app_context(connect=False):
        try:
            result = evaluate_details(kb_path, cases_path, answer_threshold=answer_threshold,
                                      suggest_threshold=suggest_threshold,
                                      target=target_precision, calibrate=not no_calibration,
                                      details_path=details_path, ask=_live_bot)
        except (KBFileError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({key: result[key] for key in METRICS}, ensure_ascii=False))
    else:
        click.echo(format_report(result))


def _live_bot(index: Any) -> Any:
    """``bot eval``'s way to ask: ``services.bot.ask`` with the KB file's index."""
    from meiqia.plugin_api import probe_conversation
    from meiqia.services import bot as live

    asked = live.answerers_with_index(index)
    conversation = probe_conversation(None)

    def ask(question: str, answer_t: float, suggest_t: float) -> Any:
        return live.ask(question, conversation, answer_t, suggest_t, k=3, asked=asked)

    return ask


@bot.command("ask")
@click.argument("question")
@click.option("--kb", "kb_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Ask a KB file instead of the team's knowledge base.")
@click.option("--team", "team_id", type=int, default=None, help=TEAM_HELP)
@click.option("-k", "top", type=int, default=3, show_default=True, help="Candidates to show.")
def bot_ask(question: str, kb_path: str | None, team_id: int | None, top: int) -> None:
    """Ask the bot one question and show its decision and top candidates.

    Questions the bot cannot read (empty, only emoji or punctuation, binary)
    are refused with the reason, as the API refuses them; one over 2,000
    characters is cut there, and the output says so.
    """
    from meiqia.bot.kbfile import KBFileError
    from meiqia.bot.normalize import MAX_QUESTION_CHARS
    from meiqia.bot.normalize import QuestionError
    from meiqia.bot.normalize import check_question
    from meiqia.plugin_api import probe_conversation
    from meiqia.services import bot as live

    try:
        check_question(question)
    except QuestionError as exc:
        raise click.ClickException(f"question: {exc}") from exc
    # The live bot's own function (services.bot.ask): the same answerers, plugins
    # included, the same merge and thresholds; --kb puts the file's index in the
    # place of the team's knowledge base.
    if kb_path:
        from meiqia.bot.cache import cached_index
        from meiqia.bot.index import DEFAULT_ANSWER_THRESHOLD
        from meiqia.bot.index import DEFAULT_SUGGEST_THRESHOLD

        with app_context(connect=False):  # the config (BOT_EMBEDDINGS) applies
            try:
                index = cached_index(kb_path)
            except KBFileError as exc:
                raise click.ClickException(str(exc)) from exc
            asked = live.ask(question, probe_conversation(None), DEFAULT_ANSWER_THRESHOLD,
                             DEFAULT_SUGGEST_THRESHOLD, k=top,
                             asked=live.answerers_with_index(index))
    else:
        from meiqia.services.teams import settings_of

        with app_context():
            _require_schema()
            team = _team(team_id)
            settings = settings_of(team)
            asked = live.ask(question, probe_conversation(team.id),
                             settings["answer_threshold"], settings["suggest_threshold"], k=top)
    if asked.truncated:
        click.echo(f"note: the question is longer than {MAX_QUESTION_CHARS:,} characters; "
                   f"only the first {MAX_QUESTION_CHARS:,} were read")
    click.echo(f"decision: {asked.kind}" + (f" ({asked.talk})" if asked.talk else ""))
    for c in asked.candidates:
        click.echo(f"  {c['score']:.3f}  [{c['entry_id']}] {c['question']}"
                   + (f"  ({c['source']})" if c["source"] != "knowledge_base" else ""))
    if asked.kind == "answer":
        click.echo(f"answer: {asked.shown[0]['answer']}")


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


@agent.command("passwd")
@click.argument("email")
@click.option("--password", prompt="New password", hide_input=True, confirmation_prompt=True,
              help="The new password (default: asked twice, not echoed).")
@click.option("--keep-sessions", is_flag=True,
              help="Do not sign out the browsers signed in as him (default: they are).")
def agent_passwd(email: str, password: str, keep_sessions: bool) -> None:
    """Set an agent's password (for one who forgot his, or the first admin's).

    Every browser signed in as him is signed out, as when he changes it himself;
    his API tokens keep working. Written to the audit log (no actor: the console).
    """
    from meiqia.services import password_reset
    from meiqia.services.errors import ServiceError

    with app_context():
        _require_schema()
        try:
            agent, ended = password_reset.set_from_console(email, password,
                                                           end_sessions=not keep_sessions)
        except ServiceError as exc:
            raise click.ClickException(exc.message) from exc
        click.echo(f"password of {agent.email} (agent {agent.id}) changed; "
                   f"{ended} session(s) signed out")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List every plugin (built-in, entry point, instance/plugins) and its hooks;
    one whose ``startup`` failed is listed with ``failed: <error>`` instead."""
    with app_context() as app:
        pm = app.extensions["meiqia.plugins"]
        rows = pm.describe()
        rows += [{"name": name, "origin": failed["origin"], "version": None, "hooks": [],
                  "failed": failed["error"]} for name, failed in sorted(pm.failed_at_startup.items())]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    width = max(len(row["name"]) for row in rows) if rows else 10
    for row in rows:
        hooks = f"failed: {row['failed']}" if row.get("failed") else ", ".join(row["hooks"])
        click.echo(f"{row['name']:<{width}}  {row['origin']:<11}  {hooks}")


def main() -> None:
    cli(prog_name="meiqia")


if __name__ == "__main__":
    sys.exit(main())
