"""TLS and proxies end to end: the emulator serves HTTPS with certificates
this file generates with openssl at test time (a test CA; a good
certificate for 127.0.0.1, localhost and api.example.test; a wrong-host
and an expired one), and a CONNECT proxy on loopback maps api.example.test
to the emulator. Checked: listings over https with ca_file (section and
-o), AWS_CA_BUNDLE and the profile's ca_bundle for EventBridge and
its STS calls (which also take the section's proxy), refused certificates (no data, no
retry, no plain-http fallback, daemon alive, the cause in the log), config
errors for bad CA paths and proxy URLs, both spellings of HTTPS_PROXY, the
proxy key, NO_PROXY, loopback never proxied even with http_proxy set, and
the proxy password nowhere in logs or status."""

import os
import subprocess

import pytest

from conftest import AKID, AWS_SECRET, BINARY, config_text, daemon_env
from emulator.proxy import Proxy

P = "activecampaign"
NAME = "api.example.test"
PROXY_PW = "proxy-pw-7f3e9a1c"


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


CA_CNF = """[ca]
default_ca = d
[d]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
"""


def new_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", name + ".key",
            "-out", name + ".pem", "-days", "2", "-subj", "/CN=" + name,
            cwd=d)


def leaf(d, name, san, ca="ca", dates=None):
    """A key and a certificate signed by ca; dates = (start, end) for
    openssl ca's -startdate/-enddate (how an expired one is made)."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
            "-subj", "/CN=" + name, cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("subjectAltName=%s\n" % san)
    if dates:
        openssl("ca", "-batch", "-config", "ca.cnf", "-cert", ca + ".pem",
                "-keyfile", ca + ".key", "-in", name + ".csr", "-out",
                name + ".pem", "-startdate", dates[0], "-enddate", dates[1],
                "-extfile", name + ".ext", "-notext", cwd=d)
    else:
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem",
                "-CAkey", ca + ".key", "-CAcreateserial", "-days", "2",
                "-extfile", name + ".ext", "-out", name + ".pem", cwd=d)
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write(CA_CNF)
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("01\n")
    new_ca(d, "ca")
    new_ca(d, "other")
    return {
        "dir": d,
        "ca": os.path.join(d, "ca.pem"),
        "other_ca": os.path.join(d, "other.pem"),
        "good": leaf(d, "good", "IP:127.0.0.1,DNS:localhost,DNS:" + NAME),
        "wronghost": leaf(d, "wronghost", "DNS:wrong.example.test"),
        "expired": leaf(d, "expired", "IP:127.0.0.1,DNS:" + NAME,
                        dates=("20200101000000Z", "20200102000000Z")),
    }


@pytest.fixture(scope="module")
def tls(emu, pki):
    """HTTPS ports of the shared emulator, one per certificate."""
    return {k: emu.listen_tls(*pki[k])
            for k in ("good", "wronghost", "expired")}


@pytest.fixture
def proxy(tls):
    with Proxy(hosts={NAME: ("127.0.0.1", tls["good"])}) as p:
        yield p


def https(port, host="127.0.0.1"):
    return "https://%s:%d" % (host, port)


def listing(m, d=P):
    return sorted(os.listdir(m.path(d)))


def test_https_with_ca_file_lists_everything(mount, fresh_emu, tls, pki):
    fresh_emu.generate(P, 45)
    m = mount({P: {"url": https(tls["good"]), "ca_file": pki["ca"],
                   "page_size": "10"}})
    names = listing(m)
    assert len(names) == 45
    assert fresh_emu.count(P) == 5
    with open(m.path(P, names[0]), "rb") as f:
        assert f.read().startswith(b"{")


def test_o_ca_file_applies_to_every_section(mount, fresh_emu, tls, pki):
    fresh_emu.generate(P, 7)
    fresh_emu.generate("nango", 9)
    m = mount({P: {"url": https(tls["good"], "localhost")},
               "nango": {"url": https(tls["good"])}},
              options=["ca_file=" + pki["ca"]])
    assert len(listing(m)) == 7
    assert len(listing(m, "nango")) == 9


def test_aws_ca_bundle_for_eventbridge(mount, fresh_emu, tls, pki):
    fresh_emu.generate("eventbridge", 12)
    m = mount({"eventbridge": {"url": https(tls["good"])}},
              env={"AWS_CA_BUNDLE": pki["ca"]})
    assert len(listing(m, "eventbridge")) == 12


ROLE = "arn:aws:iam::123456789012:role/prod"


@pytest.fixture
def sts_role(fresh_emu, tmp_path):
    """Profile prod: assume ROLE with the keys of profile base; returns
    (env, config path) for the test to finish the config file."""
    fresh_emu.generate("eventbridge", 12)
    fresh_emu.aws_auth.add_role(ROLE)
    aws = tmp_path / "aws"
    aws.mkdir()
    (aws / "credentials").write_text(
        "[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
        % (AKID, AWS_SECRET))
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
           "AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
           "AWS_CONFIG_FILE": str(aws / "config")}
    yield env, aws / "config"
    eb = fresh_emu.providers["eventbridge"]
    for akid in [k for k in eb.keys if k.startswith("ASIA")]:
        eb.keys.pop(akid)
        eb.expiry.pop(akid, None)


def prod_profile(config, ca_bundle=None):
    config.write_text("[profile prod]\nrole_arn = %s\nsource_profile = base"
                      "\nregion = us-east-1\n%s" % (
                          ROLE, "ca_bundle = %s\n" % ca_bundle
                          if ca_bundle else ""))


def test_profile_ca_bundle_for_eventbridge_and_sts(mount, fresh_emu, tls,
                                                   pki, sts_role):
    env, config = sts_role
    prod_profile(config, pki["ca"])
    env["AWS_ENDPOINT_URL_STS"] = https(tls["good"])
    m = mount({"eventbridge": {"url": https(tls["good"]), "profile": "prod"}},
              env=env)
    assert len(listing(m, "eventbridge")) == 12
    sts = fresh_emu.aws_auth.requests("sts")
    assert [r["status"] for r in sts] == [200]


def test_aws_ca_bundle_wins_over_the_profiles(mount, fresh_emu, tls, pki,
                                              sts_role):
    env, config = sts_role
    prod_profile(config, pki["ca"])
    env.update(AWS_ENDPOINT_URL_STS=https(tls["good"]),
               AWS_CA_BUNDLE=pki["other_ca"])
    m = mount({"eventbridge": {"url": https(tls["good"]), "profile": "prod"}},
              env=env)
    with pytest.raises(OSError):
        os.listdir(m.path("eventbridge"))
    assert m.proc.poll() is None, "the daemon died"
    assert fresh_emu.aws_auth.requests("sts") == []
    assert fresh_emu.count("eventbridge") == 0
    assert ("STS AssumeRole at %s: TLS certificate refused: SSL certificate "
            "problem: unable to get local issuer certificate"
            % https(tls["good"])) in m.logs()


def test_sts_goes_through_the_sections_proxy_and_ca(mount, fresh_emu, proxy,
                                                    pki, sts_role):
    # api.example.test resolves only through the proxy: STS answering at
    # all means it went the section's way, trusting the section's CA.
    env, config = sts_role
    prod_profile(config)
    env["AWS_ENDPOINT_URL_STS"] = "https://" + NAME
    m = mount({"eventbridge": {"url": "https://" + NAME, "profile": "prod",
                               "ca_file": pki["ca"],
                               "proxy": proxy.url()}}, env=env)
    assert len(listing(m, "eventbridge")) == 12
    assert [r["status"] for r in fresh_emu.aws_auth.requests("sts")] == [200]
    reqs = proxy.requests()
    assert len(reqs) >= 2
    assert all(r[0] == "CONNECT" and r[1] == NAME + ":443" for r in reqs)


@pytest.mark.parametrize("case,cause", [
    ("untrusted", "unable to get local issuer certificate"),
    ("wronghost", "no alternative certificate subject name matches"),
    ("expired", "certificate has expired"),
])
def test_refused_certificate(mount, fresh_emu, tls, pki, case, cause):
    fresh_emu.generate(P, 5)
    port = tls["good" if case == "untrusted" else case]
    ca = pki["other_ca" if case == "untrusted" else "ca"]
    m = mount({P: {"url": https(port), "ca_file": ca}})
    with pytest.raises(OSError):
        os.listdir(m.path(P))
    assert m.proc.poll() is None, "the daemon died"
    # No data, and no request over plain http (both listeners record).
    assert fresh_emu.count(P) == 0
    logs = m.logs()
    lines = [ln for ln in logs.splitlines()
             if "TLS certificate refused" in ln and cause in ln]
    assert lines, logs
    assert "retry" not in logs
    # The daemon still serves: the status file answers.
    with open(m.path(".connfs", "status")) as f:
        assert P in f.read()


def run_check(tmp_path, sections, options=(), env=None):
    cfg = tmp_path / "config"
    cfg.write_text(config_text(sections))
    cfg.chmod(0o600)
    opts = ",".join(["config=" + str(cfg)] + list(options))
    return subprocess.run([BINARY, "--check", "-o", opts],
                          env=daemon_env(tmp_path, env), capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("where", ["section", "option", "aws_ca_bundle",
                                   "profile_ca_bundle"])
def test_bad_ca_path_is_a_config_error(tmp_path, fresh_emu, where):
    missing = str(tmp_path / "nope.pem")
    notpem = tmp_path / "notpem.pem"
    notpem.write_text("hello\n")
    typ = P if where in ("section", "option") else "eventbridge"
    sec = {typ: {"url": fresh_emu.url}}
    opts, env = [], None
    if where == "section":
        sec[typ]["ca_file"] = missing
    elif where == "option":
        opts = ["ca_file=" + str(notpem)]
    elif where == "aws_ca_bundle":
        env = {"AWS_CA_BUNDLE": missing}
    else:
        (tmp_path / "config.aws").write_text(
            "[default]\nca_bundle = %s\n" % notpem)
        env = {"AWS_CONFIG_FILE": str(tmp_path / "config.aws")}
    r = run_check(tmp_path, sec, opts, env)
    assert r.returncode == 1
    want = {"section": "ca_file: " + missing + ": No such file",
            "option": "-o ca_file: " + str(notpem) + ": no PEM certificate",
            "aws_ca_bundle": "AWS_CA_BUNDLE: " + missing,
            "profile_ca_bundle": "ca_bundle of AWS profile default: " +
            str(notpem) + ": no PEM certificate"}[where]
    assert want in r.stderr, r.stderr
    assert fresh_emu.count(typ) == 0


def test_relative_ca_file_still_works_once_daemonized(tmp_path, fresh_emu,
                                                      tls, pki):
    # A daemon works from /: the bundle named relative to the directory
    # connfs was started in must still be found there.
    fresh_emu.generate(P, 6)
    cfg = tmp_path / "config"
    cfg.write_text(config_text({P: {"url": https(tls["good"])}}))
    cfg.chmod(0o600)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    log = tmp_path / "connfs.log"
    r = subprocess.run([BINARY, "-o", "config=%s,ca_file=ca.pem,logfile=%s"
                        % (cfg, log), str(mnt)], cwd=pki["dir"],
                       env=daemon_env(tmp_path), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    try:
        assert len(os.listdir(mnt / P)) == 6, log.read_text()
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], check=False)
    assert fresh_emu.count(P) == 1


def test_bad_proxy_is_a_config_error(tmp_path, fresh_emu):
    r = run_check(tmp_path, {P: {"url": fresh_emu.url,
                                 "proxy": "socks5://127.0.0.1:1"}})
    assert r.returncode == 1
    assert "proxy: not a proxy URL" in r.stderr


def assert_no_password(m):
    with open(m.path(".connfs", "status")) as f:
        status = f.read()
    for text in (status, m.logs(), m.output()):
        assert PROXY_PW not in text


@pytest.mark.parametrize("var", ["HTTPS_PROXY", "https_proxy"])
def test_through_proxy_from_environment(mount, fresh_emu, proxy, pki, var):
    fresh_emu.generate(P, 25)
    proxy.auth = "connfs:" + PROXY_PW
    m = mount({P: {"url": "https://" + NAME, "ca_file": pki["ca"],
                   "page_size": "10"}},
              env={var: proxy.url("connfs:" + PROXY_PW)})
    assert len(listing(m)) == 25
    assert fresh_emu.count(P) == 3
    reqs = proxy.requests()
    assert reqs and all(r[0] == "CONNECT" and r[1] == NAME + ":443"
                        for r in reqs)
    assert all(r[2] and r[2].startswith("Basic ") for r in reqs)
    assert "via proxy http://***@127.0.0.1:%d" % proxy.port in m.logs()
    assert_no_password(m)


def test_proxy_key_and_option(mount, fresh_emu, proxy, pki):
    fresh_emu.generate(P, 3)
    fresh_emu.generate("nango", 4)
    m = mount({P: {"url": "https://" + NAME, "proxy": proxy.url()},
               "nango": {"url": "https://" + NAME}},
              options=["ca_file=" + pki["ca"], "proxy=" + proxy.url()])
    assert len(listing(m)) == 3
    assert len(listing(m, "nango")) == 4
    assert len(proxy.requests()) >= 2


def test_proxy_none_overrides_environment(mount, fresh_emu, proxy, tls,
                                          pki):
    fresh_emu.generate(P, 3)
    m = mount({P: {"url": https(tls["good"], "localhost"),
                   "ca_file": pki["ca"]}},
              options=["proxy=none"],
              env={"HTTPS_PROXY": proxy.url()})
    assert len(listing(m)) == 3
    assert proxy.requests() == []


@pytest.mark.parametrize("var", ["NO_PROXY", "no_proxy"])
def test_no_proxy_bypasses_the_proxy(mount, fresh_emu, proxy, pki, var):
    fresh_emu.generate(P, 3)
    m = mount({P: {"url": "https://" + NAME, "ca_file": pki["ca"],
                   "deadline": "3"}},
              env={"HTTPS_PROXY": proxy.url(), var: "localhost,." + NAME})
    with pytest.raises(OSError):
        os.listdir(m.path(P))
    assert proxy.requests() == []
    assert fresh_emu.count(P) == 0
    assert "Could not resolve host: " + NAME in m.logs()
    assert m.proc.poll() is None


def test_loopback_is_never_proxied(mount, fresh_emu, proxy):
    """Plain http to the emulator on 127.0.0.1 with every proxy variable
    set: libcurl alone would send http_proxy requests (and the token) to
    the proxy in clear text."""
    fresh_emu.generate(P, 21)
    url = proxy.url("connfs:" + PROXY_PW)
    m = mount({P: {"page_size": "10"}},
              env={"http_proxy": url, "HTTP_PROXY": url, "https_proxy": url,
                   "HTTPS_PROXY": url, "ALL_PROXY": url, "all_proxy": url})
    assert len(listing(m)) == 21
    assert fresh_emu.count(P) == 3
    assert proxy.requests() == []
    assert_no_password(m)
