"""`--mqtt` discovery configs against Home Assistant's current MQTT discovery rules (no broker needed).

The rules, as Home Assistant documents and enforces them:
- topic `<discovery_prefix>/<component>/[<node_id>/]<object_id>/config`, node_id and object_id `[a-zA-Z0-9_-]+`;
- `object_id` in the payload is deprecated since 2025.10 and ignored from 2026.4; the suggested entity id is
  `default_entity_id`, a whole entity id of the topic's component: `<component>.<slug>`, where the entity id
  matches homeassistant.core's VALID_ENTITY_ID (lower-case a-z, 0-9 and `_`, no leading, trailing or double `_`);
- `unique_id` unique per entity (so the entity can be renamed in the UI).
"""

from __future__ import annotations

import re

import pytest

from edgelite.device.outputs.mqtt import discovery_payloads, entity_slug, parse_mqtt_url

# homeassistant/core.py (VALID_ENTITY_ID) and homeassistant/components/mqtt/discovery.py (TOPIC_MATCHER)
VALID_ENTITY_ID = re.compile(r"^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$")
TOPIC_MATCHER = re.compile(r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config")


@pytest.mark.parametrize("prefix", ["edgelite", "edgelite/Kitchen-Cam", "site_1/__door__/cam 2", "ÄÖ/x"])
def test_discovery_follows_home_assistants_current_schema(prefix):
    target = parse_mqtt_url(f"mqtt://127.0.0.1:1883/{prefix}")
    configs = discovery_payloads(target, {"model": "int8", "runtime": "litert"}, "homeassistant")
    assert len(configs) == 3
    unique = set()
    for topic, cfg in configs.items():
        m = TOPIC_MATCHER.fullmatch(topic.removeprefix("homeassistant/"))
        assert m, topic
        assert "object_id" not in cfg, cfg  # deprecated: Home Assistant 2026.4 ignores it
        eid = cfg["default_entity_id"]
        assert VALID_ENTITY_ID.match(eid), eid
        assert eid.split(".", 1)[0] == m["component"] == "sensor"
        unique.add(cfg["unique_id"])
    assert len(unique) == 3 and len({c["default_entity_id"] for c in configs.values()}) == 3


def test_entity_slug_is_a_valid_object_id():
    for text in ["edgelite__a", "_x_", "A-B C", "", "___", "été"]:
        assert VALID_ENTITY_ID.match(f"sensor.{entity_slug(text)}"), text
