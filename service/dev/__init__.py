"""Development tooling, run by ``tadm serve --dev`` and by the tests: the whole service on one machine
(:mod:`.server`) and a private Redis server (:mod:`.embedded_redis`). Production never imports it."""
