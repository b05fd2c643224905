"""`kino up` on a small machine: one replica of every service must fit the CPUs Ray is given."""

from services.cluster import catalog
from services.cluster.deployments import DEPLOYMENTS
from services.cluster.up import fit_cpus


def test_every_services_first_replica_fits_two_cpus_with_room_for_one_more():
    services = catalog.built_services()
    options = fit_cpus(services, num_cpus=2)
    assert set(options) == {s.name for s in services}
    reserved = sum(o["ray_actor_options"]["num_cpus"] for o in options.values())
    assert reserved <= 1.5  # a quarter of the machine stays free for an autoscaled replica
    assert all(o["ray_actor_options"]["num_cpus"] > 0 for o in options.values())


def test_the_code_defaults_stand_where_they_fit():
    services = catalog.built_services()
    defaults = sum(DEPLOYMENTS[s.name].ray_actor_options["num_cpus"] for s in services)
    assert fit_cpus(services, num_cpus=2 * defaults) == {}
