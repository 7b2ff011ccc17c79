-- What the operators' list shows of an order's quote (its machine, size and
-- print time), kept beside the quote so the list's query and the list
-- cache's rebuild never read the quote document. Orders priced before this
-- migration get them from their stored quote.
ALTER TABLE orders ADD COLUMN machine TEXT;
ALTER TABLE orders ADD COLUMN size_x_mm REAL;
ALTER TABLE orders ADD COLUMN size_y_mm REAL;
ALTER TABLE orders ADD COLUMN size_z_mm REAL;
ALTER TABLE orders ADD COLUMN print_time_s REAL;

UPDATE orders SET
    machine = json_extract(quote, '$.machine.name'),
    size_x_mm = json_extract(quote, '$.analysis.bounding_box.size[0]'),
    size_y_mm = json_extract(quote, '$.analysis.bounding_box.size[1]'),
    size_z_mm = json_extract(quote, '$.analysis.bounding_box.size[2]'),
    print_time_s = json_extract(quote, '$.print_time_s')
WHERE quote IS NOT NULL AND json_valid(quote);

-- The list cache's rebuild reads every order newest first, a page at a
-- time; without an index to follow, each page was a scan and sort of the
-- whole table.
CREATE INDEX orders_by_created ON orders (created_at_ms DESC, order_id DESC);
