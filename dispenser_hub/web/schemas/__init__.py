"""Request and response models of the API (inputs ``...Create``/``...Request``, outputs ``...Public``)."""
