"""Provider profiles: named, packaged configurations of the generic adapter.

A profile is selected like a kind (``kind = "salesloft"``). Its settings model
(:class:`~poller.adapters.providers.profiles.base.ProfileSettings`) holds only what a user
chooses (credentials, page size, how far back to look); the profile fixes the rest (paths,
paging, field paths, auth scheme, vendor hosts, rate limit) as the generic adapter's
settings, and a small subclass of the generic adapter adds what configuration cannot say.
One module per vendor, registered in :mod:`poller.adapters.providers.registry`.
"""
