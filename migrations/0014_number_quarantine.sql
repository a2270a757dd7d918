-- A number another account retired recently cannot be added (`Storage::add_numbers`): looked
-- up by number among retired rows, which the partial unique index on live numbers skips.
CREATE INDEX tracking_numbers_retired ON tracking_numbers (e164, retired_at) WHERE retired_at IS NOT NULL;
