// Command todo-example calls todo.v1.TodoService through the Go code generated
// from the contract: it creates an entry, reads it back, finds it in a listing,
// then asks for an id that does not exist and decodes the error's
// google.rpc.ErrorInfo reason against the contract's ErrorReason enum.
//
//	go run ./cmd/todo-example -addr 127.0.0.1:50051 -service-config ../service_config.json
//
// It prints one line per step and exits 1 when the service answers anything
// else than the contract promises. tests/client/test_go_client.py runs it
// against the service in `make check`.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	todov1 "todo-service/clients/go/todo/v1"
)

func main() {
	addr := flag.String("addr", "localhost:50051", "the service's host:port")
	serviceConfig := flag.String("service-config", "", "a gRPC service config JSON file (clients/service_config.json: retries)")
	timeout := flag.Duration("timeout", 5*time.Second, "the deadline of each call")
	flag.Parse()
	if err := run(*addr, *serviceConfig, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "todo-example:", err)
		os.Exit(1)
	}
}

func run(addr, serviceConfigFile string, timeout time.Duration) error {
	options := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if serviceConfigFile != "" {
		config, err := os.ReadFile(serviceConfigFile)
		if err != nil {
			return err
		}
		// Retries as the contract allows them (clients/service_config.json is generated from it).
		options = append(options, grpc.WithDefaultServiceConfig(string(config)))
	}
	conn, err := grpc.NewClient(addr, options...)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := todov1.NewTodoServiceClient(conn)
	call := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), timeout)
	}

	// The service config retries CreateTodo on UNAVAILABLE, which is safe only
	// because every call carries a request_id (AIP-155): a repeated attempt
	// returns the entry the first one created. Always send one.
	requestID, err := newRequestID()
	if err != nil {
		return err
	}
	ctx, cancel := call()
	created, err := client.CreateTodo(ctx, &todov1.CreateTodoRequest{
		Todo:      &todov1.Todo{Content: "Write the Go client", Tags: []string{"go", "Clients"}},
		RequestId: requestID,
	})
	cancel()
	if err != nil {
		return fmt.Errorf("CreateTodo: %w", err)
	}
	todo := created.GetTodo()
	fmt.Printf("created %s: %q %v etag=%s\n", todo.GetId(), todo.GetContent(), todo.GetTags(), todo.GetEtag())

	ctx, cancel = call()
	got, err := client.GetTodo(ctx, &todov1.GetTodoRequest{Id: todo.GetId()})
	cancel()
	if err != nil {
		return fmt.Errorf("GetTodo: %w", err)
	}
	if !proto.Equal(got.GetTodo(), todo) {
		return fmt.Errorf("GetTodo returned %v, CreateTodo %v", got.GetTodo(), todo)
	}
	fmt.Printf("got %s: done=%t created %s\n", got.GetTodo().GetId(), got.GetTodo().GetDone(),
		got.GetTodo().GetCreateTime().AsTime().UTC().Format(time.RFC3339))

	listed, err := listAll(client, call)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(listed, func(entry *todov1.Todo) bool { return entry.GetId() == todo.GetId() }) {
		return fmt.Errorf("ListTodos does not list %s", todo.GetId())
	}
	fmt.Printf("listed %d entries, %s among them\n", len(listed), todo.GetId())

	ctx, cancel = call()
	_, err = client.DeleteTodo(ctx, &todov1.DeleteTodoRequest{Id: todo.GetId(), Etag: todo.GetEtag()})
	cancel()
	if err != nil {
		return fmt.Errorf("DeleteTodo: %w", err)
	}
	fmt.Printf("deleted %s\n", todo.GetId())

	// The entry is gone: the service says NOT_FOUND with the reason TODO_NOT_FOUND.
	ctx, cancel = call()
	_, callErr := client.GetTodo(ctx, &todov1.GetTodoRequest{Id: todo.GetId()})
	cancel()
	reason, info, err := decodeReason(callErr)
	if err != nil {
		return fmt.Errorf("GetTodo of a deleted entry: %w", err)
	}
	fmt.Printf("not found: %s (ErrorReason %d) domain=%s code=%s id=%s\n",
		reason, int32(reason), info.GetDomain(), status.Code(callErr), info.GetMetadata()["id"])
	if reason != todov1.ErrorReason_TODO_NOT_FOUND {
		return fmt.Errorf("GetTodo of a deleted entry: reason %s, want TODO_NOT_FOUND", reason)
	}
	return nil
}

// newRequestID returns a random (version 4) UUID, the idempotency key of a CreateTodo.
func newRequestID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// listAll follows next_page_token over every page.
func listAll(client todov1.TodoServiceClient, call func() (context.Context, context.CancelFunc)) ([]*todov1.Todo, error) {
	var all []*todov1.Todo
	token := ""
	for {
		ctx, cancel := call()
		page, err := client.ListTodos(ctx, &todov1.ListTodosRequest{PageSize: 100, PageToken: token})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("ListTodos: %w", err)
		}
		all = append(all, page.GetTodos()...)
		token = page.GetNextPageToken()
		if token == "" {
			return all, nil
		}
	}
}

// decodeReason reads the google.rpc.ErrorInfo of a failed call and decodes its
// reason by name against the contract's ErrorReason enum. It checks the rest
// of what the contract says of the reason: the domain is ErrorReason's
// error_domain option, and the status code is the value's status_code option.
// A reason this build does not know (a newer server) is an error here; a
// production caller would act on the status code alone.
func decodeReason(callErr error) (todov1.ErrorReason, *errdetails.ErrorInfo, error) {
	st, ok := status.FromError(callErr)
	if callErr == nil || !ok {
		return 0, nil, fmt.Errorf("want a gRPC status error, got %v", callErr)
	}
	var info *errdetails.ErrorInfo
	for _, detail := range st.Details() {
		if found, isInfo := detail.(*errdetails.ErrorInfo); isInfo {
			info = found
		}
	}
	if info == nil {
		return 0, nil, fmt.Errorf("%s: no google.rpc.ErrorInfo in the status details", st.Code())
	}
	number, known := todov1.ErrorReason_value[info.GetReason()]
	if !known {
		return 0, info, fmt.Errorf("%s: reason %q is not an ErrorReason of this contract", st.Code(), info.GetReason())
	}
	reason := todov1.ErrorReason(number)
	enum := reason.Descriptor()
	domain, ok := proto.GetExtension(enum.Options(), todov1.E_ErrorDomain).(string)
	if !ok || info.GetDomain() != domain {
		return reason, info, fmt.Errorf("reason %s from domain %q, want %q", reason, info.GetDomain(), domain)
	}
	value := enum.Values().ByNumber(protoreflect.EnumNumber(number))
	want, ok := proto.GetExtension(value.Options(), todov1.E_StatusCode).(code.Code)
	if !ok || codes.Code(want) != st.Code() {
		return reason, info, errors.New("reason " + reason.String() + " came with status " + st.Code().String() +
			", the contract says " + codes.Code(want).String())
	}
	return reason, info, nil
}
