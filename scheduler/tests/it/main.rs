//! Integration tests of the queue seam against a real RabbitMQ. Each test
//! declares its own uniquely named queues and deletes them at the end.

use testkit::services;

mod amqp;
