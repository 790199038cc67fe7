// Command authzcheck serves grpc-go's own authorization engine over mTLS, for the conformance test.
//
// It reads a gRPC authorization policy (the JSON of grpc-go's authz package), builds
// authz.NewStatic from it, and serves every method of every service over mutual TLS
// behind that engine: a call the policy refuses ends PERMISSION_DENIED (grpc-go's own
// decision); a call it allows reaches a handler that ends it UNIMPLEMENTED.
// tests/e2e/test_authz_conformance.py sends the same calls, with the same client
// certificates and metadata, here and to the service, and requires the same decisions.
//
//	authzcheck -policy policy.json -cert server.pem -key server.key -ca ca.pem -addr 127.0.0.1:0
//
// It prints "listening on HOST:PORT" on stdout once it serves, and runs until killed.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/authz"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

func main() {
	policyFile := flag.String("policy", "", "gRPC authorization policy (JSON)")
	certFile := flag.String("cert", "", "server certificate (PEM)")
	keyFile := flag.String("key", "", "server key (PEM)")
	caFile := flag.String("ca", "", "CA bundle that signs client certificates (PEM)")
	addr := flag.String("addr", "127.0.0.1:0", "where to listen (loopback)")
	flag.Parse()

	policy, err := os.ReadFile(*policyFile)
	if err != nil {
		log.Fatalf("policy: %v", err)
	}
	engine, err := authz.NewStatic(string(policy))
	if err != nil {
		log.Fatalf("authz.NewStatic: %v", err)
	}
	pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatalf("certificate: %v", err)
	}
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		log.Fatalf("ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		log.Fatal("ca: no certificate")
	}
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})
	server := grpc.NewServer(
		grpc.Creds(creds),
		grpc.ChainStreamInterceptor(engine.StreamInterceptor),
		grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error {
			return status.Error(codes.Unimplemented, "allowed by the policy")
		}),
	)
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	fmt.Printf("listening on %s\n", listener.Addr())
	if err := server.Serve(listener); err != nil {
		log.Fatalf("serve: %v", err)
	}
}
