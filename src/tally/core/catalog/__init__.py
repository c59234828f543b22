"""The catalog: products, features, prices, plans and their versions, per-customer overrides, and
catalog files with the diff that `tally catalog plan` shows and `apply` carries out. See README.md."""
