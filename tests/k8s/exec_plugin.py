#!/usr/bin/python3
"""A client-go exec credential plugin for tests (run directly by posix_spawn, no shell).

Reads KUBERNETES_EXEC_INFO as kubectl passes it and prints an ExecCredential of the same
apiVersion. Driven by its environment (the kubeconfig's exec env entries):

  PLUGIN_STATE       directory: "runs" (a counter), "runs.jsonl" (one line per run: its time, the
                     expiry it gave, whether its token was the wrong one), "exec-info.json"
  PLUGIN_TOKEN_FILE  file holding the token to hand out (else PLUGIN_TOKEN)
  PLUGIN_EXPIRE_S    seconds until the credential expires (none when unset)
  PLUGIN_BAD_FIRST   "1": the first run hands out a wrong token (the server answers 401)
  PLUGIN_CERT_FILE, PLUGIN_KEY_FILE   hand out a client certificate and key instead
  PLUGIN_FAIL        exit 1 with this message on stderr
"""
import datetime
import json
import os
import sys
import time


def main():
    env = os.environ
    info = json.loads(env.get("KUBERNETES_EXEC_INFO") or "{}")
    state = env.get("PLUGIN_STATE")
    runs = 1
    if state:
        counter = os.path.join(state, "runs")
        try:
            with open(counter) as f:
                runs = int(f.read().strip() or "0") + 1
        except FileNotFoundError:
            pass
        with open(os.path.join(state, "exec-info.json"), "w") as f:
            json.dump(info, f)
    if env.get("PLUGIN_FAIL"):
        sys.stderr.write(env["PLUGIN_FAIL"] + "\n")
        return 1
    status = {}
    if env.get("PLUGIN_CERT_FILE"):
        with open(env["PLUGIN_CERT_FILE"]) as f:
            status["clientCertificateData"] = f.read()
        with open(env["PLUGIN_KEY_FILE"]) as f:
            status["clientKeyData"] = f.read()
    else:
        token = env.get("PLUGIN_TOKEN", "")
        if env.get("PLUGIN_TOKEN_FILE"):
            with open(env["PLUGIN_TOKEN_FILE"]) as f:
                token = f.read().strip()
        bad = env.get("PLUGIN_BAD_FIRST") == "1" and runs == 1
        status["token"] = "wrong-" + token if bad else token
    now = time.time()
    expires = None
    if env.get("PLUGIN_EXPIRE_S"):
        expires = now + float(env["PLUGIN_EXPIRE_S"])
        status["expirationTimestamp"] = datetime.datetime.fromtimestamp(
            expires, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        expires = int(expires)  # what the timestamp says, whole seconds
    if state:
        with open(os.path.join(state, "runs.jsonl"), "a") as f:
            f.write(json.dumps({"run": runs, "time": now, "expires": expires,
                                "bad": status.get("token", "").startswith("wrong-")}) + "\n")
        with open(os.path.join(state, "runs.tmp"), "w") as f:
            f.write("%d\n" % runs)
        os.replace(os.path.join(state, "runs.tmp"), os.path.join(state, "runs"))
    json.dump({"apiVersion": info.get("apiVersion", "client.authentication.k8s.io/v1"),
               "kind": "ExecCredential", "status": status}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
