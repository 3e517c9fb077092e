//! Domain types shared by every service: ids, tenant context, and the error table mapped to gRPC and HTTP
