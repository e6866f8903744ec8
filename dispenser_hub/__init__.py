"""dispenser-hub: the edge service that provisions, schedules and supervises medication dispensers."""
