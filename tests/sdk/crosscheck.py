#!/usr/bin/env python3
"""Cross-check our signing against Alibaba's own: requests signed by the
official Python SDKs must be accepted by the fake API, which verifies
signatures with our Rust signers; a wrong secret or a missing STS token must
be refused. Two generations of SDK: the older aliyun-python-sdk-core +
aliyun-python-sdk-r-kvstore (signature V2, HMAC-SHA1, GET and POST), and
the current alibabacloud-tea-openapi + alibabacloud-r-kvstore20150101, which
signs with V3 (ACS3-HMAC-SHA256) by default: the check proves that default
by looking at the Authorization header the SDK sends, and also runs the
same SDK with signature_algorithm="v2". The SDK's
DescribeInstances (with tags, as discovery sends them) and DescribeRegions
requests are accepted too, and the fake's answers have the shape the SDK's
documentation gives. So are DescribeBackupPolicy and, for a cloud-native
cluster found through DescribeInstances, DescribeClusterBackupList (whose
answer is a plain array with strings for numbers and end times without Z),
while DescribeBackups refuses that instance as the real API does.

The other database products, each through Alibaba's current SDK of its own
(alibabacloud-rds20140815, alibabacloud-dds20151201,
alibabacloud-polardb20170801; V3 by default, and V2 with
signature_algorithm="v2"): DescribeBackups (per shard NodeId for a sharded
MongoDB cluster found through DescribeDBInstances), discovery
(DescribeDBInstances, DescribeDBClusters) and DescribeBackupPolicy are
accepted, and the answers parse in the SDK's models with every field the
fake sends of the type the SDK declares (RDS: counts as strings, BackupId a
string, BackupSize and IsAvail numbers; MongoDB: IsAvail a boolean;
PolarDB: every backup field a string, BackupSetSize), the fields the
exporter reads present. A wrong secret is refused, and an unknown instance
gets the product's NotFound code.

Usage: crosscheck.py PATH/TO/fake_api   (the `fake_api` example binary)
Talks to 127.0.0.1 only.
"""
import inspect
import json
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.auth.credentials import AccessKeyCredential, StsTokenCredential
from aliyunsdkcore.client import AcsClient
from aliyunsdkr_kvstore.request.v20150101.DescribeBackupPolicyRequest import DescribeBackupPolicyRequest
from aliyunsdkr_kvstore.request.v20150101.DescribeBackupsRequest import DescribeBackupsRequest
from aliyunsdkr_kvstore.request.v20150101.DescribeClusterBackupListRequest import DescribeClusterBackupListRequest
from aliyunsdkr_kvstore.request.v20150101.DescribeInstancesRequest import DescribeInstancesRequest
from aliyunsdkr_kvstore.request.v20150101.DescribeRegionsRequest import DescribeRegionsRequest

# The current SDK generation (Darabonba / Tea).
from alibabacloud_r_kvstore20150101 import models as kvstore_models
from alibabacloud_r_kvstore20150101.client import Client as KvstoreClient
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
from darabonba.core import DaraCore
from darabonba.runtime import RuntimeOptions

# RDS, MongoDB and PolarDB, current generation.
from alibabacloud_dds20151201 import models as dds_models
from alibabacloud_dds20151201.client import Client as DdsClient
from alibabacloud_polardb20170801 import models as polardb_models
from alibabacloud_polardb20170801.client import Client as PolardbClient
from alibabacloud_rds20140815 import models as rds_models
from alibabacloud_rds20140815.client import Client as RdsClient

KEY_ID, SECRET, TOKEN = "testid", "testsecret", "CAIS-sts-token-for-crosscheck"
checks = {"passed": 0, "failed": 0}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_fake(binary, *extra):
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--listen", f"127.0.0.1:{port}", "--access-key-id", KEY_ID,
         "--access-key-secret", SECRET, "--demo", *extra],
        stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening on"):
        proc.kill()
        sys.exit(f"fake API did not start: {line!r}")
    return proc, f"127.0.0.1:{port}"


def request(endpoint, method="POST", instance="r-demo-healthy"):
    now = datetime.now(timezone.utc)
    req = DescribeBackupsRequest()
    req.set_endpoint(endpoint)
    req.set_protocol_type("http")
    req.set_method(method)
    req.set_InstanceId(instance)
    req.set_StartTime((now - timedelta(days=7)).strftime("%Y-%m-%dT%H:%MZ"))
    req.set_EndTime((now + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%MZ"))
    req.set_PageSize(100)
    return req


def check(name, fn):
    try:
        fn()
        checks["passed"] += 1
        print(f"ok     {name}")
    except Exception as e:  # a failed check is reported, the others still run
        checks["failed"] += 1
        print(f"FAILED {name}: {e!r}")


def accepted(client, endpoint, method):
    def run():
        body = json.loads(client.do_action_with_exception(request(endpoint, method)))
        assert body["TotalCount"] == 7, body["TotalCount"]
        backups = body["Backups"]["Backup"]
        assert len(backups) == 7 and all(b["BackupStatus"] == "Success" for b in backups)
    return run


def instances_by_tag(client, endpoint):
    def run():
        req = DescribeInstancesRequest()
        req.set_endpoint(endpoint)
        req.set_protocol_type("http")
        req.set_PageSize(50)
        req.set_Tags([{"Key": "env", "Value": "prod"}])
        # RegionId is required with tags; the SDK sends the client's region.
        body = json.loads(client.do_action_with_exception(req))
        found = sorted(i["InstanceId"] for i in body["Instances"]["KVStoreInstance"])
        # The demo's env=prod instances in cn-hangzhou: not the staging one,
        # nor those of cn-shanghai.
        assert {"r-demo-cluster", "r-demo-healthy"} <= set(found), found
        assert "r-demo-throttled" not in found and "r-demo-failed" not in found, found
        assert body["TotalCount"] == len(found), body["TotalCount"]
        assert all({"Key": "env", "Value": "prod"} in i["Tags"]["Tag"]
                   for i in body["Instances"]["KVStoreInstance"])
    return run


def regions(client, endpoint):
    def run():
        req = DescribeRegionsRequest()
        req.set_endpoint(endpoint)
        req.set_protocol_type("http")
        body = json.loads(client.do_action_with_exception(req))
        listed = {r["RegionId"]: r["RegionEndpoint"] for r in body["RegionIds"]["KVStoreRegion"]}
        assert listed == {"cn-hangzhou": "r-kvstore.aliyuncs.com",
                          "cn-shanghai": "r-kvstore.aliyuncs.com"}, listed
    return run


def cloud_native_instances(client, endpoint):
    """The cloud-native clusters DescribeInstances lists in the client's
    region: `cluster` with a ShardCount."""
    req = DescribeInstancesRequest()
    req.set_endpoint(endpoint)
    req.set_protocol_type("http")
    req.set_PageSize(50)
    body = json.loads(client.do_action_with_exception(req))
    return [i["InstanceId"] for i in body["Instances"]["KVStoreInstance"]
            if i.get("ArchitectureType") == "cluster" and "ShardCount" in i]


def window(req):
    now = datetime.now(timezone.utc)
    req.set_StartTime((now - timedelta(days=7)).strftime("%Y-%m-%dT%H:%MZ"))
    req.set_EndTime((now + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%MZ"))
    return req


def cluster_backups(client, endpoint):
    def run():
        natives = cloud_native_instances(client, endpoint)
        assert natives, "the demo has no cloud-native cluster"
        for instance in natives:
            req = window(DescribeClusterBackupListRequest())
            req.set_endpoint(endpoint)
            req.set_protocol_type("http")
            req.set_InstanceId(instance)
            req.set_PageSize(100)
            # RegionId is required; the SDK sends the client's region.
            body = json.loads(client.do_action_with_exception(req))
            clusters = body["ClusterBackups"]
            assert isinstance(clusters, list) and clusters, body
            for c in clusters:
                assert c["ClusterBackupId"].startswith("cb-"), c["ClusterBackupId"]
                assert c["ClusterBackupStatus"] in ("OK", "Failed", "RUNNING"), c["ClusterBackupStatus"]
                assert c["IsAvail"] in (0, 1) and isinstance(c["ClusterBackupSize"], str), c
                assert isinstance(c["Backups"], list) and c["Backups"], c
                for shard in c["Backups"]:
                    assert isinstance(shard["BackupId"], str), shard["BackupId"]
                    assert shard["InstanceName"].startswith(instance + "-"), shard["InstanceName"]
                    assert shard["BackupStatus"] in ("OK", "ERROR", "RUNNING"), shard["BackupStatus"]
                    assert shard["IsAvail"] in ("0", "1") and isinstance(shard["BackupSize"], str), shard
                    datetime.strptime(shard["BackupStartTime"], "%Y-%m-%dT%H:%M:%S")
                    if "BackupEndTime" in shard:
                        datetime.strptime(shard["BackupEndTime"], "%Y-%m-%dT%H:%M:%S")
    return run


def not_applicable(client, endpoint):
    def run():
        natives = cloud_native_instances(client, endpoint)
        assert natives, "the demo has no cloud-native cluster"
        for req in (request(endpoint, instance=natives[0]), window(DescribeClusterBackupListRequest())):
            if isinstance(req, DescribeClusterBackupListRequest):
                req.set_endpoint(endpoint)
                req.set_protocol_type("http")
                req.set_InstanceId("r-demo-healthy")
            try:
                client.do_action_with_exception(req)
            except ServerException as e:
                assert e.get_error_code() == "InstanceType.NotSupport", e.get_error_code()
                assert e.get_http_status() == 400, e.get_http_status()
                continue
            raise AssertionError(f"{type(req).__name__} was accepted")
    return run


def backup_policy(client, endpoint):
    def run():
        def ask(instance):
            req = DescribeBackupPolicyRequest()
            req.set_endpoint(endpoint)
            req.set_protocol_type("http")
            req.set_InstanceId(instance)
            return json.loads(client.do_action_with_exception(req))
        body = ask("r-demo-healthy")
        days = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
        assert set(body["PreferredBackupPeriod"].split(",")) <= days, body["PreferredBackupPeriod"]
        assert body["PreferredBackupTime"].count("Z-") == 1, body["PreferredBackupTime"]
        # A string and a number, as the API reference gives them.
        assert isinstance(body["BackupRetentionPeriod"], str) and body["BackupRetentionPeriod"].isdigit(), body
        assert body["EnableBackupLog"] in (0, 1), body["EnableBackupLog"]
        try:
            ask("r-demo-released")
        except ServerException as e:
            assert e.get_error_code() == "InvalidInstanceId.NotFound", e.get_error_code()
        else:
            raise AssertionError("a released instance has a policy")
    return run


def forbidden_policy(client, endpoint):
    """Some demo instance's policy is refused as a RAM policy would; the SDK
    reads the error document."""
    def run():
        refused = []
        for region in ("cn-hangzhou", "cn-shanghai"):
            regional = AcsClient(region_id=region, credential=AccessKeyCredential(KEY_ID, SECRET))
            req = DescribeInstancesRequest()
            req.set_endpoint(endpoint)
            req.set_protocol_type("http")
            req.set_PageSize(50)
            listed = json.loads(regional.do_action_with_exception(req))["Instances"]["KVStoreInstance"]
            for instance in listed:
                req = DescribeBackupPolicyRequest()
                req.set_endpoint(endpoint)
                req.set_protocol_type("http")
                req.set_InstanceId(instance["InstanceId"])
                try:
                    regional.do_action_with_exception(req)
                except ServerException as e:
                    assert (e.get_error_code(), e.get_http_status()) == ("Forbidden.RAM", 403), e
                    refused.append(instance["InstanceId"])
        assert refused, "no demo instance's policy is forbidden"
    return run


def refused(client, endpoint, code):
    def run():
        try:
            client.do_action_with_exception(request(endpoint))
        except ServerException as e:
            assert e.get_error_code() == code, e.get_error_code()
            return
        raise AssertionError("the request was accepted")
    return run


# Every request the current SDK sends, as it sends it (headers included),
# to prove which signature it used.
sent = []
_do_action = DaraCore.do_action


def _recording_do_action(request, runtime):
    sent.append(request)
    return _do_action(request, runtime)


DaraCore.do_action = staticmethod(_recording_do_action)


def tea_client(endpoint, secret=SECRET, token=None, algorithm=None):
    config = open_api_models.Config(
        access_key_id=KEY_ID, access_key_secret=secret, security_token=token,
        endpoint=endpoint, protocol="http", region_id="cn-hangzhou")
    if algorithm:
        config.signature_algorithm = algorithm
    return KvstoreClient(config)


def no_retries():
    # The SDK's own retries would hide how often a request was refused.
    return RuntimeOptions(autoretry=False, max_attempts=0)


def tea_backups(client, instance="r-demo-healthy"):
    now = datetime.now(timezone.utc)
    req = kvstore_models.DescribeBackupsRequest(
        instance_id=instance,
        start_time=(now - timedelta(days=7)).strftime("%Y-%m-%dT%H:%MZ"),
        end_time=(now + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%MZ"),
        page_size=100)
    return client.describe_backups_with_options(req, no_retries()).body


def last_authorization():
    assert sent, "the SDK sent nothing"
    headers = {k.lower(): v for k, v in sent[-1].headers.items()}
    return headers.get("authorization", ""), headers


def tea_v3_accepted(endpoint, token=None):
    def run():
        body = tea_backups(tea_client(endpoint, token=token))
        authorization, headers = last_authorization()
        # The SDK's default is V3, with the token in its own header.
        assert authorization.startswith("ACS3-HMAC-SHA256 Credential=" + KEY_ID + ","), authorization[:40]
        signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
        for name in ("host", "x-acs-action", "x-acs-version", "x-acs-date",
                     "x-acs-signature-nonce", "x-acs-content-sha256"):
            assert name in signed, (name, signed)
        if token:
            assert headers.get("x-acs-security-token") == token and "x-acs-security-token" in signed
        assert body.total_count == 7, body.total_count
        backups = body.backups.backup
        assert len(backups) == 7 and all(b.backup_status == "Success" for b in backups)
    return run


def tea_v3_instances(endpoint):
    def run():
        req = kvstore_models.DescribeInstancesRequest(
            region_id="cn-hangzhou", page_size=50,
            tag=[kvstore_models.DescribeInstancesRequestTag(key="env", value="prod")])
        body = tea_client(endpoint).describe_instances_with_options(req, no_retries()).body
        assert last_authorization()[0].startswith("ACS3-HMAC-SHA256 ")
        found = sorted(i.instance_id for i in body.instances.kvstore_instance)
        assert {"r-demo-cluster", "r-demo-healthy"} <= set(found), found
        assert "r-demo-throttled" not in found, found
    return run


def tea_v2_accepted(endpoint):
    def run():
        body = tea_backups(tea_client(endpoint, algorithm="v2"))
        assert not last_authorization()[0], "signature_algorithm=v2 sent an Authorization header"
        assert body.total_count == 7, body.total_count
    return run


def tea_refused(endpoint, code, **client):
    def run():
        try:
            tea_backups(tea_client(endpoint, **client))
        except AlibabaCloudException as e:
            assert e.code == code, (e.code, e.message)
            assert e.status_code == 400, e.status_code
            return
        raise AssertionError("the request was accepted")
    return run


# ---- RDS, MongoDB, PolarDB ------------------------------------------------

PRODUCT_CLIENTS = {"rds": RdsClient, "dds": DdsClient, "polardb": PolardbClient}
PLAIN_TYPES = {"str": str, "int": int, "bool": bool, "float": float}


def product_client(product, endpoint, secret=SECRET, token=None, algorithm=None):
    config = open_api_models.Config(
        access_key_id=KEY_ID, access_key_secret=secret, security_token=token,
        endpoint=endpoint, protocol="http", region_id="cn-hangzhou")
    if algorithm:
        config.signature_algorithm = algorithm
    return PRODUCT_CLIENTS[product](config)


def typed(model, required=()):
    """Every plain field of the SDK model that the answer set has the type
    the SDK declares (`int` not satisfied by a bool), recursively through
    nested models and lists; `required` fields must be set."""
    params = inspect.signature(type(model).__init__).parameters
    for name in required:
        assert getattr(model, name, None) is not None, (type(model).__name__, name, model.to_map())
    for name, param in params.items():
        if name == "self":
            continue
        value = getattr(model, name, None)
        if value is None:
            continue
        annotation = param.annotation if isinstance(param.annotation, str) else getattr(param.annotation, "__name__", "")
        want = PLAIN_TYPES.get(annotation)
        if want is not None:
            ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
            assert ok, f"{type(model).__name__}.{name} is {value!r} ({type(value).__name__}), the SDK declares {annotation}"
        elif isinstance(value, list):
            for v in value:
                if hasattr(v, "to_map"):
                    typed(v)
        elif hasattr(value, "to_map"):
            typed(value)


def window_args(days=7):
    now = datetime.now(timezone.utc)
    return {"start_time": (now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%MZ"),
            "end_time": (now + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%MZ")}


# What the exporter reads of a backup, per product (SDK attribute names).
SUCCESS_FIELDS = {
    "rds": ("backup_status", "backup_start_time", "backup_end_time", "backup_size", "host_instance_id",
            "is_avail", "backup_type", "backup_mode", "backup_method"),
    "dds": ("backup_status", "backup_start_time", "backup_end_time", "backup_size", "is_avail",
            "backup_type", "backup_mode", "backup_method", "backup_id"),
    "polardb": ("backup_status", "backup_start_time", "backup_end_time", "backup_set_size", "is_avail",
                "backup_type", "backup_mode", "backup_method", "dbcluster_id"),
}


def check_backups(product, backups, total, failed_expected):
    assert len(backups) == total, (len(backups), total)
    failed = [b for b in backups if b.backup_status == "Failed"]
    assert len(failed) == failed_expected, [b.backup_status for b in backups]
    for b in backups:
        typed(b, ("backup_status", "backup_start_time", "is_avail"))
        datetime.strptime(b.backup_start_time, "%Y-%m-%dT%H:%M:%SZ")
        if b.backup_status == "Success":
            typed(b, SUCCESS_FIELDS[product])
            datetime.strptime(b.backup_end_time, "%Y-%m-%dT%H:%M:%SZ")
    return failed


def rds_backups(endpoint, algorithm=None):
    def run():
        client = product_client("rds", endpoint, algorithm=algorithm)
        for instance, failures in (("rm-demo-healthy", 0), ("rm-demo-failed", 1)):
            req = rds_models.DescribeBackupsRequest(dbinstance_id=instance, page_size=100, **window_args())
            body = client.describe_backups_with_options(req, no_retries()).body
            check_signature(algorithm)
            typed(body, ("total_record_count", "page_number", "page_record_count", "items"))
            assert body.total_record_count == "7", body.total_record_count
            failed = check_backups("rds", body.items.backup, 7, failures)
            for b in failed:
                assert b.is_avail == 0 and b.backup_size is None, b.to_map()
    return run


def rds_discovery_and_policy(endpoint):
    def run():
        client = product_client("rds", endpoint)
        req = rds_models.DescribeDBInstancesRequest(region_id="cn-hangzhou", page_size=100)
        body = client.describe_dbinstances_with_options(req, no_retries()).body
        typed(body, ("total_record_count", "items"))
        found = sorted(i.dbinstance_id for i in body.items.dbinstance)
        assert found == ["rm-demo-failed", "rm-demo-healthy"], found
        for i in body.items.dbinstance:
            typed(i, ("dbinstance_id", "region_id", "engine", "dbinstance_status", "create_time"))
        req = rds_models.DescribeBackupPolicyRequest(dbinstance_id="rm-demo-healthy")
        policy = client.describe_backup_policy_with_options(req, no_retries()).body
        typed(policy, ("preferred_backup_period", "preferred_backup_time", "backup_retention_period"))
        assert policy.backup_retention_period == 7, policy.backup_retention_period
    return run


def dds_backups(endpoint, algorithm=None):
    def run():
        client = product_client("dds", endpoint, algorithm=algorithm)
        req = dds_models.DescribeBackupsRequest(dbinstance_id="dds-demo-replica", page_size=100)
        body = client.describe_backups_with_options(req, no_retries()).body
        check_signature(algorithm)
        typed(body, ("total_count", "backups"))
        assert body.total_count == 7, body.total_count
        check_backups("dds", body.backups.backup, 7, 0)
        # The sharded cluster's shards, as discovery finds them, one call each.
        listed = client.describe_dbinstances_with_options(
            dds_models.DescribeDBInstancesRequest(region_id="cn-hangzhou", dbinstance_type="sharding"),
            no_retries()).body
        typed(listed, ("total_count", "dbinstances"))
        [cluster] = listed.dbinstances.dbinstance
        assert cluster.dbinstance_id == "dds-demo-sharded" and cluster.dbinstance_type == "sharding"
        nodes = [s.node_id for s in cluster.shard_list.shard_attribute]
        assert nodes == ["d-demo-shard-0", "d-demo-shard-1"], nodes
        failures = 0
        for node in nodes:
            req = dds_models.DescribeBackupsRequest(dbinstance_id=cluster.dbinstance_id, node_id=node,
                                                    page_size=30, **window_args())
            body = client.describe_backups_with_options(req, no_retries()).body
            failed = check_backups("dds", body.backups.backup, 7, 1 if node.endswith("-1") else 0)
            for b in failed:
                assert b.is_avail is False, b.to_map()
            failures += len(failed)
        assert failures == 1, failures
    return run


def dds_discovery_and_policy(endpoint):
    def run():
        client = product_client("dds", endpoint)
        req = dds_models.DescribeDBInstancesRequest(
            region_id="cn-hangzhou", tag=[dds_models.DescribeDBInstancesRequestTag(key="env", value="prod")])
        body = client.describe_dbinstances_with_options(req, no_retries()).body
        found = [i.dbinstance_id for i in body.dbinstances.dbinstance]
        # Replica sets unless sharded clusters are asked for.
        assert found == ["dds-demo-replica"], found
        typed(body.dbinstances.dbinstance[0], ("dbinstance_id", "region_id", "dbinstance_status", "tags"))
        req = dds_models.DescribeBackupPolicyRequest(dbinstance_id="dds-demo-sharded")
        policy = client.describe_backup_policy_with_options(req, no_retries()).body
        typed(policy, ("preferred_backup_period", "preferred_backup_time", "backup_retention_period",
                       "enable_backup_log"))
        assert policy.backup_retention_period == "7", policy.backup_retention_period
    return run


def polardb_backups(endpoint, algorithm=None):
    def run():
        client = product_client("polardb", endpoint, algorithm=algorithm)
        for cluster, failures in (("pc-demo-healthy", 0), ("pc-demo-failed", 1)):
            req = polardb_models.DescribeBackupsRequest(dbcluster_id=cluster, page_size=100, **window_args())
            body = client.describe_backups_with_options(req, no_retries()).body
            check_signature(algorithm)
            typed(body, ("total_record_count", "page_number", "page_record_count", "items"))
            assert body.total_record_count == "7", body.total_record_count
            failed = check_backups("polardb", body.items.backup, 7, failures)
            for b in failed:
                assert b.is_avail == "0" and b.backup_set_size is None, b.to_map()
    return run


def polardb_discovery_and_policy(endpoint):
    def run():
        client = product_client("polardb", endpoint)
        req = polardb_models.DescribeDBClustersRequest(region_id="cn-hangzhou", page_size=30)
        body = client.describe_dbclusters_with_options(req, no_retries()).body
        typed(body, ("total_record_count", "items"))
        found = sorted(c.dbcluster_id for c in body.items.dbcluster)
        assert found == ["pc-demo-failed", "pc-demo-healthy"], found
        for c in body.items.dbcluster:
            typed(c, ("dbcluster_id", "region_id", "dbcluster_status", "create_time", "dbnodes"))
        req = polardb_models.DescribeBackupPolicyRequest(dbcluster_id="pc-demo-healthy")
        policy = client.describe_backup_policy_with_options(req, no_retries()).body
        typed(policy, ("preferred_backup_period", "preferred_backup_time", "data_level_1backup_retention_period"))
    return run


def check_signature(algorithm):
    authorization = last_authorization()[0]
    if algorithm == "v2":
        assert not authorization, "signature_algorithm=v2 sent an Authorization header"
    else:
        assert authorization.startswith("ACS3-HMAC-SHA256 Credential=" + KEY_ID + ","), authorization[:40]


PRODUCT_BACKUPS = {
    "rds": lambda c, i: c.describe_backups_with_options(
        rds_models.DescribeBackupsRequest(dbinstance_id=i, **window_args()), no_retries()),
    "dds": lambda c, i: c.describe_backups_with_options(
        dds_models.DescribeBackupsRequest(dbinstance_id=i, **window_args()), no_retries()),
    "polardb": lambda c, i: c.describe_backups_with_options(
        polardb_models.DescribeBackupsRequest(dbcluster_id=i, **window_args()), no_retries()),
}


def product_refused(endpoint, product, instance, code, status, **client):
    def run():
        try:
            PRODUCT_BACKUPS[product](product_client(product, endpoint, **client), instance)
        except AlibabaCloudException as e:
            assert (e.code, e.status_code) == (code, status), (e.code, e.status_code, e.message)
            return
        raise AssertionError("the request was accepted")
    return run


def product_checks(endpoint):
    wrong = "wrong" + SECRET
    for algorithm in (None, "v2"):
        how = "V3" if algorithm is None else "V2"
        check(f"rds20140815 {how} DescribeBackups is accepted and parses in the SDK's models, typed",
              rds_backups(endpoint, algorithm))
        check(f"dds20151201 {how} DescribeBackups (replica set, and per NodeId of a sharded cluster) "
              "is accepted and parses in the SDK's models, typed", dds_backups(endpoint, algorithm))
        check(f"polardb20170801 {how} DescribeBackups is accepted and parses in the SDK's models, typed",
              polardb_backups(endpoint, algorithm))
    check("rds20140815 DescribeDBInstances and DescribeBackupPolicy parse, typed", rds_discovery_and_policy(endpoint))
    check("dds20151201 DescribeDBInstances (tags) and DescribeBackupPolicy parse, typed",
          dds_discovery_and_policy(endpoint))
    check("polardb20170801 DescribeDBClusters and DescribeBackupPolicy parse, typed",
          polardb_discovery_and_policy(endpoint))
    for product, instance in (("rds", "rm-demo-healthy"), ("dds", "dds-demo-replica"), ("polardb", "pc-demo-healthy")):
        for algorithm in (None, "v2"):
            how = "V3" if algorithm is None else "V2"
            check(f"{product} {how} with a wrong secret is refused with SignatureDoesNotMatch",
                  product_refused(endpoint, product, instance, "SignatureDoesNotMatch", 400,
                                  secret=wrong, algorithm=algorithm))
    for product, instance, code in (("rds", "rm-no-such", "InvalidDBInstanceId.NotFound"),
                                    ("dds", "dds-no-such", "InvalidDBInstanceId.NotFound"),
                                    ("polardb", "pc-no-such", "InvalidDBClusterId.NotFound")):
        check(f"{product}: an unknown instance is {code}",
              product_refused(endpoint, product, instance, code, 404))


def main():
    binary = sys.argv[1]
    fake, endpoint = start_fake(binary, "--products")
    try:
        good = AcsClient(region_id="cn-hangzhou", credential=AccessKeyCredential(KEY_ID, SECRET))
        bad = AcsClient(region_id="cn-hangzhou", credential=AccessKeyCredential(KEY_ID, "wrong" + SECRET))
        check("SDK-signed POST DescribeBackups is accepted and parsed", accepted(good, endpoint, "POST"))
        check("SDK-signed GET DescribeBackups is accepted and parsed", accepted(good, endpoint, "GET"))
        # The SDK compares the string-to-sign the server echoes with its own;
        # when they are equal it reports InvalidAccessKeySecret instead of
        # SignatureDoesNotMatch. So this also proves that the fake (our
        # signer) builds exactly the SDK's string-to-sign.
        check("a wrong secret is refused, and the fake's string-to-sign equals the SDK's",
              refused(bad, endpoint, "InvalidAccessKeySecret"))
        check("SDK-signed DescribeInstances with a tag is accepted and filtered",
              instances_by_tag(good, endpoint))
        check("SDK-signed DescribeRegions is accepted and parsed", regions(good, endpoint))
        check("SDK-signed DescribeClusterBackupList is accepted and has the real shapes",
              cluster_backups(good, endpoint))
        check("the call for the other architecture is refused with InstanceType.NotSupport",
              not_applicable(good, endpoint))
        check("SDK-signed DescribeBackupPolicy is accepted and parsed", backup_policy(good, endpoint))
        check("a policy the RAM policy forbids is refused with Forbidden.RAM",
              forbidden_policy(good, endpoint))
        check("tea-openapi signs V3 (ACS3-HMAC-SHA256) by default; its DescribeBackups is accepted and parsed",
              tea_v3_accepted(endpoint))
        check("tea-openapi V3 DescribeInstances with a tag is accepted and filtered",
              tea_v3_instances(endpoint))
        check("tea-openapi V3 with a wrong secret is refused with SignatureDoesNotMatch",
              tea_refused(endpoint, "SignatureDoesNotMatch", secret="wrong" + SECRET))
        check("tea-openapi with signature_algorithm=v2 (RPC, HMAC-SHA1) is accepted",
              tea_v2_accepted(endpoint))
        check("tea-openapi V2 with a wrong secret is refused with SignatureDoesNotMatch",
              tea_refused(endpoint, "SignatureDoesNotMatch", secret="wrong" + SECRET, algorithm="v2"))
        product_checks(endpoint)
    finally:
        fake.kill()
    fake, endpoint = start_fake(binary, "--security-token", TOKEN)
    try:
        sts = AcsClient(region_id="cn-hangzhou", credential=StsTokenCredential(KEY_ID, SECRET, TOKEN))
        plain = AcsClient(region_id="cn-hangzhou", credential=AccessKeyCredential(KEY_ID, SECRET))
        check("SDK-signed STS request (SecurityToken) is accepted", accepted(sts, endpoint, "POST"))
        check("a request without the STS token is refused", refused(plain, endpoint, "InvalidSecurityToken.Mismatch"))
        check("tea-openapi V3 STS request (x-acs-security-token) is accepted",
              tea_v3_accepted(endpoint, token=TOKEN))
        check("tea-openapi V3 without the STS token is refused",
              tea_refused(endpoint, "InvalidSecurityToken.Mismatch"))
        check("tea-openapi V3 with a wrong STS token is refused",
              tea_refused(endpoint, "InvalidSecurityToken.Mismatch", token="CAIS-not-the-token"))
    finally:
        fake.kill()
    print(f"sdk crosscheck: {checks['passed']} passed, {checks['failed']} failed")
    sys.exit(1 if checks["failed"] else 0)


if __name__ == "__main__":
    main()
