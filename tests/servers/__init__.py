"""Real HTTP servers on 127.0.0.1 for the imagery tests: files with Range requests, a Planetary Computer
SAS token service, a fault-injecting proxy, and the rustac STAC API server."""
