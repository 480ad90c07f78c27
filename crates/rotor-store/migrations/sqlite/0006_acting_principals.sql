-- Who the server acts for. A secret's rotation runs as the principal that last
-- configured or started it, authorized with that principal's policies at each step;
-- a rotator remembers who registered it, whose right to run commands on the server
-- is checked again each time an exec or lambda rotator runs.
ALTER TABLE secrets ADD COLUMN rotation_principal TEXT;
ALTER TABLE rotators ADD COLUMN created_by TEXT;
