"""One Locust process, driven as a library: ``python -m fridgebench.load.runner --role ROLE ...``.

``fridgebench load`` starts these (one ``local``; or a ``master`` and N ``worker`` s) and never
imports Locust itself: ``import locust`` monkey-patches the whole process with gevent, which
must not reach ``fridgebench load``'s own process (it owns the servers and stays asyncio-clean,
and it must outlive a Locust process that dies to clean up after it).

Here Locust is used as a library — an :class:`locust.env.Environment` over the locustfile's
user and shape classes, the runner of the role, Locust's web UI with ``--web`` — and the
locustfile's ``init`` listener wires fridgebench's conductor and recorders exactly as it does
under plain ``locust -f``. Progress and the outcome go to stdout as ``FBEVENT {json}`` lines;
Locust's log to stderr. Exit status: fridgebench's (0, 1, 2; 130 when stopped by a signal).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

ROLES = ("local", "master", "worker")


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write("FBEVENT " + json.dumps(event, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fridgebench.load.runner")
    p.add_argument("--role", choices=ROLES, required=True)
    p.add_argument("--users", type=int, default=None)
    p.add_argument("--spawn-rate", type=float, default=None)
    p.add_argument("--master-host", default="127.0.0.1")
    p.add_argument("--master-port", type=int, default=5557)
    p.add_argument("--master-bind-host", default="127.0.0.1")
    p.add_argument("--expect-workers", type=int, default=1)
    p.add_argument("--connect-timeout", type=float, default=60.0, help="worker: seconds to wait for the master")
    p.add_argument("--workers-timeout", type=float, default=300.0, help="master: seconds to wait for the workers")
    p.add_argument("--web", action="store_true")
    p.add_argument("--web-host", default="127.0.0.1")
    p.add_argument("--web-port", type=int, default=8089)
    p.add_argument("--loglevel", default="INFO")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sys.argv = sys.argv[:1]  # Locust's web UI parses sys.argv as Locust options: ours are not
    os.environ["FRIDGEBENCH_EVENTS"] = "stdout"

    import gevent
    import locust
    from locust import argument_parser
    from locust.env import Environment
    from locust.log import setup_logging

    setup_logging(args.loglevel, None)
    from fridgebench.load import conductor as cond
    from fridgebench.load import locustfile as lf

    parser = argument_parser.get_empty_argument_parser()
    argument_parser.setup_parser_arguments(parser)
    opts = parser.parse(args=[])
    opts.headless = not args.web
    opts.num_users = args.users
    opts.spawn_rate = args.spawn_rate
    opts.expect_workers = args.expect_workers
    opts.master = args.role == "master"
    opts.worker = args.role == "worker"
    env = Environment(user_classes=list(lf.USER_CLASSES.values()),
                      shape_class=None if args.role == "worker" else lf.FridgebenchPhases(),
                      events=locust.events, parsed_options=opts, locustfile=os.path.basename(lf.__file__),
                      parsed_locustfiles=[lf.__file__])
    interrupted = False

    def quit_locust() -> None:
        if env.runner is not None:
            env.runner.quit()
        if env.web_ui is not None:
            env.web_ui.stop()

    def quit_after_cleanup(conductor: Any) -> None:
        conductor.finished.wait(cond.CLEANUP_TIMEOUT_S)
        quit_locust()

    def on_signal() -> None:
        """First signal: the conductor stops the users, collects the workers' last reports and deletes
        what the run wrote (bounded), then Locust quits; a second signal quits at once."""
        nonlocal interrupted
        first, interrupted = not interrupted, True
        conductor = lf.PROCESS.conductor
        if first and conductor is not None and conductor.interrupt():
            gevent.spawn(quit_after_cleanup, conductor)
            return
        quit_locust()

    gevent.signal_handler(signal.SIGTERM, on_signal)
    gevent.signal_handler(signal.SIGINT, on_signal)

    if args.role == "worker":
        try:
            with gevent.Timeout(args.connect_timeout):
                runner = env.create_worker_runner(args.master_host, args.master_port)
        except gevent.Timeout:
            _emit({"type": "error", "status": 1,
                   "text": f"no Locust master answered at {args.master_host}:{args.master_port} within "
                           f"{args.connect_timeout:g} s — start `fridgebench load --master` there first, "
                           "or check --master-host / --master-port and the firewall"})
            return 1
        _emit({"type": "connected", "text": f"connected to the master at {args.master_host}:{args.master_port}"})
    elif args.role == "master":
        runner = env.create_master_runner(master_bind_host=args.master_bind_host, master_bind_port=args.master_port)
    else:
        runner = env.create_local_runner()

    web_ui = None
    if args.web and args.role != "worker":
        web_ui = env.create_web_ui(host=args.web_host, port=args.web_port, delayed_start=True)
    lf.PROCESS.own_signals = True  # on_signal above: the locustfile installs no handler of its own
    env.events.init.fire(environment=env, runner=runner, web_ui=web_ui)
    conductor = lf.PROCESS.conductor
    if args.role != "worker" and conductor is None:
        return int(env.process_exit_code or 2)  # the settings were refused (already reported)

    if web_ui is not None:
        web_ui.start()
        _emit({"type": "web", "text": f"Locust's web UI: http://{args.web_host}:{args.web_port} — press Start "
                                      "there (the stores run one after another); Ctrl-C here to stop"})
        web_ui.greenlet.join()
    elif args.role == "worker":
        runner.greenlet.join()
    else:
        if args.role == "master":
            waited = 0.0
            while len(runner.clients.ready) < args.expect_workers and not interrupted:
                if waited >= args.workers_timeout:
                    _emit({"type": "error", "status": 1,
                           "text": f"only {len(runner.clients.ready)} of {args.expect_workers} Locust workers "
                                   f"connected within {args.workers_timeout:g} s — start them with "
                                   "`fridgebench load --worker --master-host THIS_HOST`"})
                    runner.quit()
                    return 1
                if waited and waited % 10 == 0:
                    _emit({"type": "waiting", "text": f"{len(runner.clients.ready)} of {args.expect_workers} "
                                                      "workers connected; waiting"})
                gevent.sleep(0.5)
                waited += 0.5
        if not interrupted:
            runner.start_shape()
            if runner.shape_greenlet is not None:
                runner.shape_greenlet.join()
        runner.quit()
    if interrupted:
        return 130
    if conductor is not None:
        return int(conductor.exit_status if conductor.exit_status is not None else 130)
    return int(env.process_exit_code or 0)


if __name__ == "__main__":
    sys.exit(main())
