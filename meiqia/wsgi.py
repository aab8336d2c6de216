"""WSGI entry point for production servers: ``gunicorn meiqia.wsgi:app``.

The configuration comes from ``instance/config.py`` and ``MEIQIA_*`` variables,
as for ``meiqia run``.
"""

from meiqia import create_app

app = create_app()

if app.config["BOT_WARM_UP"]:
    # Each gunicorn worker imports this module after the fork (no preload_app in
    # deploy/gunicorn.conf.py), so each builds its own indexes before questions come.
    from meiqia.services import knowledge

    knowledge.warm_up(app)

# The embedded queue (no Redis) resumes its recorded jobs now, not at the first request.
app.extensions["meiqia.jobs"].start()
# Each team's enabled channels (a mailbox reader) run now, not from the first
# request, and follow the settings other processes save (channels/registry.py).
from meiqia.channels import registry as channel_registry  # noqa: E402

channel_registry.autostart(app)
