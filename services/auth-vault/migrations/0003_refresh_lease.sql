-- A lease on refreshing a connection's token, shared by every vault process: the holder
-- alone spends the refresh token until the lease ends (or it writes a new token version,
-- which releases it). Writers still compare-and-set on token_version, the fencing token:
-- a holder whose lease ran out can never overwrite a newer token.
ALTER TABLE credentials ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE credentials ADD COLUMN lease_until_ms BIGINT NOT NULL DEFAULT 0;
