//! processed_orders.csv (processed::ProcessedOrdersWriter): any orders the
//! domain allows, written and read back with the `csv` crate, come back
//! equal, under the documented header, one record per order.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use order_pipeline::domain::{Barcode, CustomerId, OrderId, ProcessedOrder, FIRST_SALE_ORDER_ID};
use order_pipeline::processed::{ProcessedOrdersWriter, HEADER};

fuzz_target!(|data: &[u8]| {
    let Ok(orders) = orders(&mut Unstructured::new(data)) else {
        return;
    };
    let mut writer = ProcessedOrdersWriter::new(Vec::new()).expect("writing to memory");
    for order in &orders {
        writer.write(order).expect("writing to memory");
    }
    let bytes = writer.finish().expect("writing to memory");
    assert_eq!(
        read_back(&bytes),
        orders,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
});

/// Orders as the domain types allow them: positive ids (order ids below the
/// sales range) and barcodes that parse, from one to many per order.
fn orders(u: &mut Unstructured<'_>) -> Result<Vec<ProcessedOrder>> {
    let mut orders = Vec::new();
    u.arbitrary_loop(None, Some(64), |u| {
        let customer_id = CustomerId::from_trusted(u.int_in_range(1..=i64::MAX)?);
        let order_id = OrderId::from_trusted(u.int_in_range(1..=FIRST_SALE_ORDER_ID - 1)?);
        let mut barcodes = Vec::new();
        u.arbitrary_loop(Some(1), Some(16), |u| {
            if let Ok(barcode) = Barcode::parse(u.arbitrary::<&str>()?) {
                barcodes.push(barcode);
            }
            Ok(std::ops::ControlFlow::Continue(()))
        })?;
        orders.push(ProcessedOrder {
            customer_id,
            order_id,
            barcodes,
        });
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    Ok(orders)
}

/// Reads processed_orders.csv as a consumer would: the `csv` crate, the
/// bracketed list split on `, `.
fn read_back(bytes: &[u8]) -> Vec<ProcessedOrder> {
    let mut reader = csv::Reader::from_reader(bytes);
    assert_eq!(
        reader.headers().expect("a header"),
        &csv::StringRecord::from(HEADER.to_vec())
    );
    reader
        .records()
        .map(|record| {
            let record = record.expect("a CSV record");
            assert_eq!(record.len(), 3, "{record:?}");
            let list = record[2]
                .strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .unwrap_or_else(|| panic!("barcodes not bracketed: {:?}", &record[2]));
            ProcessedOrder {
                customer_id: CustomerId::parse(&record[0]).expect("a customer id"),
                order_id: OrderId::parse(&record[1]).expect("an order id"),
                barcodes: if list.is_empty() {
                    Vec::new()
                } else {
                    list.split(", ")
                        .map(|b| Barcode::parse(b).expect("a barcode"))
                        .collect()
                },
            }
        })
        .collect()
}
