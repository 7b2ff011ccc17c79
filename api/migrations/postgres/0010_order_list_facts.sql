-- What the operators' list shows of an order's quote (its machine, size and
-- print time), kept beside the quote so the list's query and the list
-- cache's rebuild never read the quote document. Orders priced before this
-- migration get them from their stored quote.
ALTER TABLE orders ADD COLUMN machine TEXT;
ALTER TABLE orders ADD COLUMN size_x_mm DOUBLE PRECISION;
ALTER TABLE orders ADD COLUMN size_y_mm DOUBLE PRECISION;
ALTER TABLE orders ADD COLUMN size_z_mm DOUBLE PRECISION;
ALTER TABLE orders ADD COLUMN print_time_s DOUBLE PRECISION;

UPDATE orders SET
    machine = quote::jsonb #>> '{machine,name}',
    size_x_mm = (quote::jsonb #>> '{analysis,bounding_box,size,0}')::double precision,
    size_y_mm = (quote::jsonb #>> '{analysis,bounding_box,size,1}')::double precision,
    size_z_mm = (quote::jsonb #>> '{analysis,bounding_box,size,2}')::double precision,
    print_time_s = (quote::jsonb #>> '{print_time_s}')::double precision
WHERE quote IS NOT NULL;

-- The list cache's rebuild reads every order newest first, a page at a
-- time; without an index to follow, each page was a scan and sort of the
-- whole table.
CREATE INDEX orders_by_created ON orders (created_at_ms DESC, order_id DESC);
