"""AWS credentials (issue 10): every source of the SDK chain, its order,
renewal of temporary credentials, rotation of the files they come from,
and no secret anywhere.

The emulator's STS, IMDSv2, container and SSO endpoints (awsauth.py) hand
out temporary keys with a lifetime the test sets; EventBridge accepts them
until they expire and then answers ExpiredTokenException. Every test
mounts the real binary and lists through it.
"""

import calendar
import errno
import hashlib
import json
import os
import re
import stat
import subprocess
import threading
import time

import pytest

from conftest import BINARY, AKID, AWS_SECRET, config_text, daemon_env

ROLE = "arn:aws:iam::123456789012:role/prod"
ROLE2 = "arn:aws:iam::123456789012:role/admin"
NO_ENV_KEYS = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
BASE_KEYS = ("[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
             % (AKID, AWS_SECRET))
SESSION = ("AKIDCONNFSSESSION", "connfs-test-secret-session",
           "connfs-test-session-token-5d2e")


def aws_env(tmp_path, emu, credentials="", config="", **extra):
    """Profile files under tmp_path/aws and the variables that find them
    (STS and SSO at the emulator); environment keys cleared."""
    aws = tmp_path / "aws"
    aws.mkdir(exist_ok=True)
    (aws / "credentials").write_text(credentials)
    (aws / "config").write_text(config)
    env = dict(NO_ENV_KEYS, AWS_SHARED_CREDENTIALS_FILE=str(aws / "credentials"),
               AWS_CONFIG_FILE=str(aws / "config"),
               AWS_ENDPOINT_URL_STS=emu.url, AWS_ENDPOINT_URL_SSO=emu.url)
    env.update(extra)
    return env


def replace_file(path, text):
    """Rewrites a file the way rotating tools do: a new file renamed over."""
    tmp = str(path) + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, str(path))


def names(m):
    return sorted(os.listdir(m.path("eventbridge")))


def want(emu):
    return sorted(c["Name"] + ".json" for c in emu.connections("eventbridge"))


def xattr(path, name):
    return os.getxattr(path, "user.connfs." + name).decode()


def eb_akids(emu):
    return [r.get("akid") for r in emu.requests("eventbridge")]


def status_text(m):
    with open(m.path(".connfs", "status.json")) as f:
        return f.read()


def issued_secrets(emu):
    """Every secret the emulator handed out or accepts."""
    out = []
    for akid, (secret, token) in emu.providers["eventbridge"].keys.items():
        out.append(secret)
        if token:
            out.append(token)
    a = emu.aws_auth
    out += list(a._imds_tokens) + list(a.sso_tokens) + list(a.web_tokens)
    if a.container_token:
        out.append(a.container_token)
    return out


def assert_no_secrets(m, emu, extra=()):
    """No secret in the log, stderr, status files or xattrs of m."""
    text = [m.logs(), m.output()]
    if os.path.ismount(m.dir):
        text.append(status_text(m))
        with open(m.path(".connfs", "status")) as f:
            text.append(f.read())
        for n in os.listxattr(m.path("eventbridge")):
            text.append(os.getxattr(m.path("eventbridge"), n).decode())
    blob = "\n".join(text)
    for s in issued_secrets(emu) + list(extra):
        assert s not in blob, "a secret leaked"


@pytest.fixture
def eb_data(fresh_emu):
    fresh_emu.generate("eventbridge", 120, seed=11)   # two pages
    yield fresh_emu
    eb = fresh_emu.providers["eventbridge"]
    for akid in [k for k in eb.keys if k.startswith("ASIA")]:
        eb.keys.pop(akid)
        eb.expiry.pop(akid, None)


def run_connfs(tmp_path, config, env, args=()):
    cfg = tmp_path / "check.conf"
    cfg.write_text(config)
    cfg.chmod(0o600)
    mnt = tmp_path / "never"
    mnt.mkdir(exist_ok=True)
    return subprocess.run([BINARY, "-f", "-o", "config=%s" % cfg, *args,
                           str(mnt)], env=daemon_env(tmp_path, env),
                          capture_output=True, text=True, timeout=30)


# --- every source lists everything --------------------------------------------

def test_assume_role_from_source_profile(mount, eb_data, tmp_path):
    eb_data.aws_auth.add_role(ROLE, external_id="ext-42")
    env = aws_env(tmp_path, eb_data, BASE_KEYS,
                  "[profile prod]\nrole_arn = %s\nsource_profile = base\n"
                  "external_id = ext-42\nrole_session_name = nightly\n"
                  "duration_seconds = 1800\nregion = eu-west-1\n" % ROLE,
                  AWS_REGION="")
    m = mount({"eventbridge": {"profile": "prod"}}, env=env)
    assert names(m) == want(eb_data)
    sts = eb_data.aws_auth.requests("sts")
    assert len(sts) == 1 and sts[0]["status"] == 200
    assert sts[0]["form"] == {"Action": "AssumeRole", "Version": "2011-06-15",
                              "RoleArn": ROLE, "RoleSessionName": "nightly",
                              "ExternalId": "ext-42",
                              "DurationSeconds": "1800"}
    # Signed by the source profile's keys for sts in the profile's region.
    assert "/eu-west-1/sts/aws4_request" in sts[0]["headers"]["authorization"]
    assert AKID in sts[0]["headers"]["authorization"]
    akids = eb_akids(eb_data)
    assert len(akids) == 2 and all(a.startswith("ASIACONNFS") for a in akids)
    assert_no_secrets(m, eb_data)


def test_assume_role_chain_and_default_session_name(mount, eb_data, tmp_path):
    eb_data.aws_auth.add_role(ROLE)
    eb_data.aws_auth.add_role(ROLE2)
    env = aws_env(tmp_path, eb_data, BASE_KEYS,
                  "[profile mid]\nrole_arn = %s\nsource_profile = base\n"
                  "[profile top]\nrole_arn = %s\nsource_profile = mid\n"
                  % (ROLE, ROLE2))
    m = mount({"eventbridge": {"profile": "top"}}, env=env)
    assert names(m) == want(eb_data)
    sts = eb_data.aws_auth.requests("sts")
    assert [r["form"]["RoleArn"] for r in sts] == [ROLE, ROLE2]
    # The second hop is signed with the first hop's temporary keys.
    assert "ASIACONNFS" in sts[1]["headers"]["authorization"]
    pid = m.proc.pid
    for r in sts:
        assert re.fullmatch(r"connfs-[\w+=,.@-]+-%d" % pid,
                            r["form"]["RoleSessionName"])
    assert_no_secrets(m, eb_data)


def test_credential_source_environment(mount, eb_data, tmp_path):
    eb_data.aws_auth.add_role(ROLE)
    env = aws_env(tmp_path, eb_data, "",
                  "[profile ci]\nrole_arn = %s\n"
                  "credential_source = Environment\n" % ROLE,
                  AWS_ACCESS_KEY_ID=AKID, AWS_SECRET_ACCESS_KEY=AWS_SECRET)
    m = mount({"eventbridge": {"profile": "ci"}}, env=env)
    assert names(m) == want(eb_data)
    assert eb_data.aws_auth.issued["sts"] == 1
    assert all(a.startswith("ASIACONNFS") for a in eb_akids(eb_data))


def test_web_identity_from_environment(mount, eb_data, tmp_path):
    a = eb_data.aws_auth
    a.add_role(ROLE)
    a.web_tokens.add("jwt-one")
    tok = tmp_path / "token"
    tok.write_text("jwt-one\n")
    env = aws_env(tmp_path, eb_data, AWS_WEB_IDENTITY_TOKEN_FILE=str(tok),
                  AWS_ROLE_ARN=ROLE, AWS_ROLE_SESSION_NAME="pod-7")
    m = mount({"eventbridge": {}}, env=env)
    assert names(m) == want(eb_data)
    sts = a.requests("webid")
    assert len(sts) == 1 and sts[0]["status"] == 200
    assert "authorization" not in sts[0]["headers"]       # unsigned
    assert sts[0]["form"]["RoleSessionName"] == "pod-7"
    assert_no_secrets(m, eb_data)


def test_sso_session_profile(mount, eb_data, tmp_path):
    a = eb_data.aws_auth
    a.sso_tokens["sso-access-token-1"] = ("111122223333", "ReadOnly")
    env = aws_env(tmp_path, eb_data, "",
                  "[profile dev]\nsso_session = corp\nsso_account_id = "
                  "111122223333\nsso_role_name = ReadOnly\n"
                  "[sso-session corp]\nsso_start_url = https://corp.example"
                  ".test/start\nsso_region = eu-central-1\n")
    write_sso_cache(tmp_path, "corp", "sso-access-token-1", time.time() + 3600)
    m = mount({"eventbridge": {"profile": "dev"}}, env=env)
    assert names(m) == want(eb_data)
    sso = a.requests("sso")
    assert len(sso) == 1
    assert sso[0]["query"] == "account_id=111122223333&role_name=ReadOnly"
    assert_no_secrets(m, eb_data)


def test_credential_process(mount, eb_data, tmp_path):
    script = tmp_path / "creds.sh"
    out = {"Version": 1, "AccessKeyId": SESSION[0],
           "SecretAccessKey": SESSION[1], "SessionToken": SESSION[2],
           "Expiration": "2099-01-01T00:00:00Z"}
    script.write_text("#!/bin/sh\n[ \"$1\" = 'two words' ] || exit 7\n"
                      "cat <<'EOF'\n%s\nEOF\n" % json.dumps(out))
    script.chmod(0o700)
    env = aws_env(tmp_path, eb_data, "",
                  "[profile proc]\ncredential_process = %s 'two words'\n"
                  % script)
    m = mount({"eventbridge": {"profile": "proc"}}, env=env)
    assert names(m) == want(eb_data)
    assert eb_akids(eb_data) == [SESSION[0]] * 2
    assert_no_secrets(m, eb_data, SESSION[1:])


def test_container_full_uri_with_rotating_token_file(mount, eb_data, tmp_path):
    a = eb_data.aws_auth
    a.lifetime = 3
    a.container_token = "Bearer pod-identity-1"
    tok = tmp_path / "eks-token"
    tok.write_text("Bearer pod-identity-1")
    env = aws_env(tmp_path, eb_data,
                  AWS_CONTAINER_CREDENTIALS_FULL_URI=eb_data.url +
                  "/v2/credentials/pod",
                  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(tok))
    m = mount({"eventbridge": {"ttl": "1"}}, env=env)
    assert names(m) == want(eb_data)
    assert a.issued["container"] == 1
    # The agent rotates the token; the next renewal reads the new one.
    a.container_token = "Bearer pod-identity-2"
    replace_file(tok, "Bearer pod-identity-2")
    deadline = time.time() + 20
    while a.issued["container"] < 2 and time.time() < deadline:
        assert names(m) == want(eb_data)
        time.sleep(0.3)
    assert a.issued["container"] >= 2
    assert names(m) == want(eb_data)
    assert all(r["status"] == 200 for r in a.requests("container"))
    assert_no_secrets(m, eb_data, ["Bearer pod-identity-1"])


def test_imds_credentials_and_region(mount, eb_data, tmp_path):
    a = eb_data.aws_auth
    a.region = "ap-southeast-2"
    env = aws_env(tmp_path, eb_data, AWS_EC2_METADATA_DISABLED="",
                  AWS_EC2_METADATA_SERVICE_ENDPOINT=eb_data.url,
                  AWS_REGION="")
    m = mount({"eventbridge": {}}, env=env)
    assert names(m) == want(eb_data)
    assert a.issued["imds"] == 1
    assert {r.get("region") for r in eb_data.requests("eventbridge")} == \
        {"ap-southeast-2"}
    imds = a.requests("imds")
    assert imds[0]["method"] == "PUT" and imds[0]["path"] == "/latest/api/token"
    # IMDSv2 only: a token first, then every read carries it.
    for r in imds:
        if r["method"] == "PUT":
            assert r["path"] == "/latest/api/token"
            assert r["headers"]["x-aws-ec2-metadata-token-ttl-seconds"]
        else:
            assert r["method"] == "GET"
            assert r["headers"]["x-aws-ec2-metadata-token"]
    assert all(r["status"] == 200 for r in imds)
    assert_no_secrets(m, eb_data)


# --- the order of the chain --------------------------------------------------

def chain_env(tmp_path, emu, **extra):
    emu.aws_auth.add_role(ROLE)
    return aws_env(tmp_path, emu, BASE_KEYS,
                   "[profile prod]\nrole_arn = %s\nsource_profile = base\n"
                   % ROLE, AWS_EC2_METADATA_DISABLED="",
                   AWS_EC2_METADATA_SERVICE_ENDPOINT=emu.url, **extra)


@pytest.mark.parametrize("section,extra,source", [
    # Environment keys come first, even with AWS_PROFILE set ...
    ({}, {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
          "AWS_PROFILE": "prod"}, "env"),
    # ... but profile= in the section wins over them.
    ({"profile": "prod"}, {"AWS_ACCESS_KEY_ID": AKID,
                           "AWS_SECRET_ACCESS_KEY": AWS_SECRET}, "sts"),
    ({}, {"AWS_PROFILE": "prod"}, "sts"),
    ({}, {"AWS_PROFILE": "base"}, "static"),
    # Nothing configured: instance metadata.
    ({}, {}, "imds"),
])
def test_chain_order(mount, eb_data, tmp_path, section, extra, source):
    env = chain_env(tmp_path, eb_data, **extra)
    m = mount({"eventbridge": section}, env=env)
    assert names(m) == want(eb_data)
    a = eb_data.aws_auth
    issued = {k: v for k, v in a.issued.items() if v}
    akids = set(eb_akids(eb_data))
    if source in ("env", "static"):
        assert issued == {} and akids == {AKID}
        assert a.requests() == []
    else:
        assert issued == {source: 1}
        assert all(x.startswith("ASIACONNFS") for x in akids)
    r = subprocess.run([BINARY, "--check", "-o", "config=" + m.config],
                       env=daemon_env(tmp_path, env), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    for secret in issued_secrets(eb_data):
        assert secret not in r.stdout + r.stderr
    line = [x for x in r.stdout.splitlines() if "credentials:" in x][0]
    assert {"env": "environment", "static": "profile base (static keys",
            "sts": "assume-role prod -> source_profile base (static keys)",
            "imds": "EC2 instance metadata, role connfs-instance-role"}[
                source] in line


# --- renewal ------------------------------------------------------------------

def test_short_lived_credentials_keep_the_listing_fresh(mount, eb_data,
                                                        tmp_path):
    a = eb_data.aws_auth
    a.lifetime = 5
    a.add_role(ROLE)
    env = aws_env(tmp_path, eb_data, BASE_KEYS,
                  "[profile prod]\nrole_arn = %s\nsource_profile = base\n"
                  % ROLE)
    m = mount({"eventbridge": {"profile": "prod", "ttl": "1"}}, env=env)
    d = m.path("eventbridge")
    end = time.time() + 20
    checks = 0
    while time.time() < end:
        assert names(m) == want(eb_data)
        assert xattr(d, "stale") == "0"
        assert xattr(d, "last_error") == "-"
        checks += 1
        time.sleep(0.25)
    walks = sum(1 for r in eb_data.requests("eventbridge")
                if '"NextToken"' not in r["body"])
    # Every page was signed with unexpired keys: renewed before expiry
    # (an expired one would be a 400 ExpiredTokenException and a retry).
    assert all(r["status"] == 200 for r in eb_data.requests("eventbridge"))
    assert all(r["akid"].startswith("ASIACONNFS")
               for r in eb_data.requests("eventbridge"))
    assert walks >= 10 and checks >= 40
    # 20 s of 5 s credentials: at least one renewal per lifetime.
    assert a.issued["sts"] >= 4
    assert all(r["status"] == 200 for r in a.requests("sts"))
    assert_no_secrets(m, eb_data)


def test_expired_token_renews_once_and_retries_the_page(mount, eb_data,
                                                        tmp_path):
    a = eb_data.aws_auth
    a.add_role(ROLE)
    env = aws_env(tmp_path, eb_data, BASE_KEYS,
                  "[profile prod]\nrole_arn = %s\nsource_profile = base\n"
                  % ROLE)
    m = mount({"eventbridge": {"profile": "prod", "ttl": "1"}}, env=env)
    assert names(m) == want(eb_data)
    assert a.issued["sts"] == 1
    # AWS revokes the session early (it still claims an hour).
    eb = eb_data.providers["eventbridge"]
    first = eb_akids(eb_data)[0]
    eb.expiry[first] = time.time() - 1
    eb_data.clear_requests()
    time.sleep(1.2)
    assert names(m) == want(eb_data)
    recs = eb_data.requests("eventbridge")
    assert [r["status"] for r in recs] == [400, 200, 200]
    assert recs[0]["akid"] == first and recs[1]["akid"] != first
    assert a.issued["sts"] == 2
    assert xattr(m.path("eventbridge"), "last_error") == "-"


def test_credentials_expiring_in_the_middle_of_a_walk(mount, eb_data,
                                                      tmp_path):
    a = eb_data.aws_auth
    a.add_role(ROLE)
    env = aws_env(tmp_path, eb_data, BASE_KEYS,
                  "[profile prod]\nrole_arn = %s\nsource_profile = base\n"
                  % ROLE)
    m = mount({"eventbridge": {"profile": "prod"}}, env=env)
    eb_data.set_latency("eventbridge", 300)
    eb = eb_data.providers["eventbridge"]
    done = threading.Event()

    def revoke_after_first_page():
        # Page 1 answered: its keys die while page 2 waits in the emulator.
        while not done.is_set():
            recs = eb_data.requests("eventbridge")
            if recs and recs[0]["status"] == 200:
                eb.expiry[recs[0]["akid"]] = time.time() - 1
                return
            time.sleep(0.005)

    t = threading.Thread(target=revoke_after_first_page)
    t.start()
    try:
        assert names(m) == want(eb_data)
    finally:
        done.set()
        t.join()
    recs = eb_data.requests("eventbridge")
    assert [r["status"] for r in recs] == [200, 400, 200]
    assert '"NextToken"' in recs[1]["body"] and recs[1]["body"] == \
        recs[2]["body"]                     # the same page, asked again
    assert recs[2]["akid"] != recs[0]["akid"]
    assert a.issued["sts"] == 2


def test_rotated_credentials_file_takes_effect(mount, eb_data, tmp_path):
    env = aws_env(tmp_path, eb_data, BASE_KEYS)
    m = mount({"eventbridge": {"profile": "base", "ttl": "1"}}, env=env)
    assert names(m) == want(eb_data)
    assert set(eb_akids(eb_data)) == {AKID}
    # aws-vault / saml2aws style: new session keys written into the file.
    replace_file(tmp_path / "aws" / "credentials",
                 "[base]\naws_access_key_id = %s\naws_secret_access_key = %s"
                 "\naws_session_token = %s\n" % SESSION)
    eb_data.clear_requests()
    time.sleep(1.2)
    assert names(m) == want(eb_data)
    assert set(eb_akids(eb_data)) == {SESSION[0]}
    assert_no_secrets(m, eb_data, SESSION[1:])


def test_rotated_web_identity_token(mount, eb_data, tmp_path):
    a = eb_data.aws_auth
    a.lifetime = 3
    a.add_role(ROLE)
    a.web_tokens.add("jwt-one")
    tok = tmp_path / "token"
    tok.write_text("jwt-one")
    env = aws_env(tmp_path, eb_data, "",
                  "[profile irsa]\nrole_arn = %s\nweb_identity_token_file"
                  " = %s\n" % (ROLE, tok))
    m = mount({"eventbridge": {"profile": "irsa", "ttl": "1"}}, env=env)
    assert names(m) == want(eb_data)
    # Kubernetes rotates the projected token; the old one stops working.
    a.web_tokens = {"jwt-two"}
    replace_file(tok, "jwt-two")
    deadline = time.time() + 20
    while a.issued["webid"] < 2 and time.time() < deadline:
        assert names(m) == want(eb_data)
        time.sleep(0.3)
    assert a.issued["webid"] >= 2
    assert [r["status"] for r in a.requests("webid")] == \
        [200] * len(a.requests("webid"))
    assert xattr(m.path("eventbridge"), "last_error") == "-"
    assert_no_secrets(m, eb_data, ["jwt-one"])


# --- SSO login state ------------------------------------------------------------

def utc(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def write_sso_cache(tmp_path, key, token, expires, home_index=0, **extra):
    """The login `aws sso login` caches; returns the file's path."""
    cache = tmp_path / ("m%d" % home_index) / ".aws" / "sso" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(key.encode()).hexdigest() + ".json"
    doc = {"startUrl": "https://corp.example.test/start",
           "region": "eu-central-1", "accessToken": token,
           "expiresAt": utc(expires)}
    doc.update(extra)
    replace_file(cache / name, json.dumps(doc))
    return cache / name


def test_expired_sso_login_is_named_then_recovers(mount, eb_data, tmp_path):
    a = eb_data.aws_auth
    a.sso_tokens["sso-fresh-token"] = ("111122223333", "ReadOnly")
    # Legacy profile: the cache is named after the start URL.
    url = "https://corp.example.test/start"
    env = aws_env(tmp_path, eb_data, "",
                  "[profile dev]\nsso_start_url = %s\nsso_region = "
                  "eu-central-1\nsso_account_id = 111122223333\n"
                  "sso_role_name = ReadOnly\n" % url)
    write_sso_cache(tmp_path, url, "sso-stale-token", time.time() - 60)
    m = mount({"eventbridge": {"profile": "dev", "ttl": "1"}}, env=env)
    with pytest.raises(OSError) as exc:
        os.listdir(m.path("eventbridge"))
    assert exc.value.errno in (errno.EIO, errno.EACCES)
    hint = "aws sso login --profile dev"
    assert hint in m.logs()
    assert hint in status_text(m)
    assert a.requests("sso") == []          # never sent an expired token
    r = subprocess.run([BINARY, "--check", "-o", "config=" + m.config],
                       env=daemon_env(tmp_path / "m0", env),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and hint in r.stdout, r.stdout + r.stderr
    assert "the cached login expired at" in r.stdout
    assert "sso-stale-token" not in r.stdout + r.stderr
    write_sso_cache(tmp_path, url, "sso-fresh-token", time.time() + 3600)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            if names(m) == want(eb_data):
                break
        except OSError:
            pass
        time.sleep(0.3)
    assert names(m) == want(eb_data)
    assert a.issued["sso"] == 1
    assert_no_secrets(m, eb_data, ["sso-stale-token"])


SSO_DEV = ("[profile dev]\nsso_session = corp\nsso_account_id = "
           "111122223333\nsso_role_name = ReadOnly\n"
           "[sso-session corp]\nsso_start_url = https://corp.example"
           ".test/start\nsso_region = eu-central-1\n")
OIDC_CLIENT = ("connfs-test-client", "connfs-test-client-secret-41d7")


def sso_login(tmp_path, a, token, expires, refresh):
    """An sso-session login with its refresh token and OIDC client, as
    `aws sso login` leaves it; the emulator knows the client."""
    a.sso_clients[OIDC_CLIENT[0]] = OIDC_CLIENT[1]
    return write_sso_cache(
        tmp_path, "corp", token, expires, refreshToken=refresh,
        clientId=OIDC_CLIENT[0], clientSecret=OIDC_CLIENT[1],
        registrationExpiresAt=utc(time.time() + 86400))


@pytest.mark.parametrize("left", [300, -60], ids=["soon", "expired"])
def test_sso_login_renews_itself_with_its_refresh_token(mount, eb_data,
                                                        tmp_path, left):
    a = eb_data.aws_auth
    who = ("111122223333", "ReadOnly")
    a.sso_tokens["sso-old-token"] = who
    a.sso_expiry["sso-old-token"] = time.time() + left
    a.sso_refresh["sso-refresh-1"] = who
    path = sso_login(tmp_path, a, "sso-old-token", time.time() + left,
                     "sso-refresh-1")
    env = aws_env(tmp_path, eb_data, "", SSO_DEV,
                  AWS_ENDPOINT_URL_SSO_OIDC=eb_data.url)
    m = mount({"eventbridge": {"profile": "dev"}}, env=env)
    assert names(m) == want(eb_data)
    oidc = a.requests("oidc")
    assert [r["status"] for r in oidc] == [200]
    assert json.loads(oidc[0]["body"]) == {
        "grantType": "refresh_token", "clientId": OIDC_CLIENT[0],
        "clientSecret": OIDC_CLIENT[1], "refreshToken": "sso-refresh-1"}
    # Saved as the AWS CLI saves it: the new access and refresh tokens,
    # the client kept, 0600, and the portal got the new token.
    doc = json.loads(path.read_text())
    new, = [t for t in a.sso_tokens if t != "sso-old-token"]
    rotated, = a.sso_refresh
    assert doc["accessToken"] == new and doc["refreshToken"] == rotated
    assert doc["clientId"] == OIDC_CLIENT[0]
    assert doc["startUrl"] == "https://corp.example.test/start"
    got = calendar.timegm(time.strptime(doc["expiresAt"],
                                        "%Y-%m-%dT%H:%M:%SZ"))
    assert got > time.time() + 3000
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sso = a.requests("sso")
    assert [r["headers"]["x-amz-sso_bearer_token"] for r in sso] == [new]
    assert "renewed the SSO login of profile dev" in m.logs()
    assert_no_secrets(m, eb_data, ["sso-old-token", "sso-refresh-1", new,
                                   rotated, OIDC_CLIENT[1]])


def test_sections_sharing_a_login_renew_it_once(mount, eb_data, tmp_path):
    a = eb_data.aws_auth
    who = ("111122223333", "ReadOnly")
    a.sso_tokens["sso-old-token"] = who
    a.sso_refresh["sso-refresh-1"] = who
    sso_login(tmp_path, a, "sso-old-token", time.time() + 300,
              "sso-refresh-1")
    env = aws_env(tmp_path, eb_data, "", SSO_DEV,
                  AWS_ENDPOINT_URL_SSO_OIDC=eb_data.url)
    m = mount({"eventbridge": {"profile": "dev"},
               "eb2": {"type": "eventbridge", "profile": "dev"}}, env=env)
    got = {}

    def ls(d):
        got[d] = sorted(os.listdir(m.path(d)))
    threads = [threading.Thread(target=ls, args=(d,))
               for d in ("eventbridge", "eb2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert got == {"eventbridge": want(eb_data), "eb2": want(eb_data)}
    # One renewal: the second section read the login the first saved.
    assert [r["status"] for r in a.requests("oidc")] == [200]
    assert "renewing the SSO login failed" not in m.logs()


def test_sso_login_that_cannot_be_renewed_is_named(mount, eb_data, tmp_path):
    a = eb_data.aws_auth
    # The refresh token was revoked: the emulator does not know it.
    sso_login(tmp_path, a, "sso-old-token", time.time() - 60, "sso-revoked")
    env = aws_env(tmp_path, eb_data, "", SSO_DEV,
                  AWS_ENDPOINT_URL_SSO_OIDC=eb_data.url)
    m = mount({"eventbridge": {"profile": "dev"}}, env=env)
    with pytest.raises(OSError):
        os.listdir(m.path("eventbridge"))
    logs = m.logs()
    assert "could not be renewed: SSO OIDC: HTTP 400" in logs
    assert "InvalidGrantException" in logs
    assert "aws sso login --profile dev" in logs
    assert [r["status"] for r in a.requests("oidc")] == [400]
    assert a.requests("sso") == []
    assert_no_secrets(m, eb_data, ["sso-old-token", "sso-revoked",
                                   OIDC_CLIENT[1]])


# --- refused before mounting ------------------------------------------------------

@pytest.mark.parametrize("config,needle", [
    ("[profile a]\nrole_arn = %s\nsource_profile = b\n"
     "[profile b]\nrole_arn = %s\nsource_profile = a\n" % (ROLE, ROLE2),
     "source_profile loop: a -> b -> a"),
    ("[profile a]\nrole_arn = %s\nsource_profile = base\n"
     "mfa_serial = arn:aws:iam::123456789012:mfa/me\n" % ROLE,
     "mfa_serial needs a one-time code"),
    ("[profile a]\nrole_arn = %s\nsource_profile = base\n"
     "credential_source = Environment\n" % ROLE,
     "exactly one of source_profile and credential_source"),
    ("[profile a]\nrole_arn = %s\nsource_profile = nobody\n" % ROLE,
     "source_profile nobody does not exist"),
    ("[profile a]\nsso_session = gone\nsso_account_id = 1\n"
     "sso_role_name = r\n", "no [sso-session gone] section"),
])
def test_broken_profiles_fail_before_mounting(tmp_path, fresh_emu, config,
                                              needle):
    env = aws_env(tmp_path, fresh_emu, BASE_KEYS, config)
    r = run_connfs(tmp_path, "[eventbridge]\nprofile = a\nregion = "
                   "us-east-1\nurl = %s\n" % fresh_emu.url, env)
    assert r.returncode != 0
    assert needle in r.stderr, r.stderr
    assert fresh_emu.aws_auth.requests() == []
    if "mfa" in needle:
        assert "credential_process" in r.stderr


def test_no_source_at_all_is_named(tmp_path, fresh_emu):
    env = aws_env(tmp_path, fresh_emu, AWS_EC2_METADATA_DISABLED="",
                  AWS_EC2_METADATA_SERVICE_ENDPOINT=fresh_emu.url)
    fresh_emu.aws_auth.imds_enabled = False
    r = run_connfs(tmp_path, "[eventbridge]\nregion = us-east-1\n", env)
    assert r.returncode != 0
    assert "no AWS credentials" in r.stderr
    assert "EC2 instance metadata" in r.stderr
