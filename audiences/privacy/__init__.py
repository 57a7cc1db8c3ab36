"""GDPR: export everything held about one customer, and erase a customer everywhere.

Both walk the model graph instead of a hand-kept list (`relations`): every model with a foreign-key path to
Customer is found at run time. Erasure also reaches rows that no foreign key ties to the customer but that can
still name them (`traces`: who the person is; `rules`: where to search and what to do with a match, filled by
apps from their `ready()`). `export` answers an access request; `erase` deletes, redacts and tombstones.
"""
