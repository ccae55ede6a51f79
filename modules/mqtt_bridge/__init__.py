"""The optional MQTT bridge (docs/MQTT.md): the service's states on a broker, Home Assistant
discovery, commands from the device's own topics, one figurine mirroring another.

* ``config.py`` — ``[mqtt]``; ``core.py`` — the pure core (topics, payloads, discovery, command
  validation, token bucket, latest-only out buffer); ``module.py`` — :class:`MqttBridge`, the
  shell on the bus and the aiomqtt client.
"""

from modules.mqtt_bridge.config import MqttConfig, default_device_id
from modules.mqtt_bridge.module import MqttBridge

__all__ = ["MqttBridge", "MqttConfig", "default_device_id"]
