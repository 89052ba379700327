//! Token verification shared by the gateway and tasks-api (design section 5). Filled in by
//! the auth service work.
