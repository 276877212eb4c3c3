// santa's warm Java compiler: one JVM compiles many programs, one javax.tools task each.
//
// Started by santa/eval/_zygote.py inside a sandbox of its own (own namespaces, unprivileged
// uid, rlimits, no network), as `java SantaJavac.java <classpath>` (the JDK's source launcher).
// It never runs a program: it only turns source text into class bytes, so what a completion does
// when it runs (System.exit, threads, files, loops) happens in that program's own sandbox.
//
// Protocol (big-endian, java.io.Data* framing), one request after another on stdin:
//   once, at start-up: byte 'R' (ready)
//   request:  long id, bytes fileName, bytes source            (bytes = int length + UTF-8)
//   response: long id, byte status, bytes diagnostics, int n, n x (bytes classFile, bytes data)
// status: 0 compiled, 1 compile error (diagnostics as the javac command prints them),
//         2 the compiler itself failed (the supervisor then compiles that program the old way).
// Each task gets a fresh compiler context and a fresh in-memory output: nothing one program
// compiles is visible to the next; the class path is the javatuples jar alone, no source path,
// no annotation processing.

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import javax.tools.FileObject;
import javax.tools.ForwardingJavaFileManager;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileManager;
import javax.tools.JavaFileObject;
import javax.tools.SimpleJavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.StandardLocation;
import javax.tools.ToolProvider;

public final class SantaJavac {
    // The options of santa's per-program `javac` call, less what the in-memory files make moot
    // (-encoding: the source arrives as text; -d: the output stays in memory).
    static final List<String> OPTIONS = List.of("-nowarn", "-proc:none");
    static final long COMPILER_STACK = 256 * 1024;

    static final class Source extends SimpleJavaFileObject {
        final String name;
        final String text;

        Source(String name, String text) {
            super(URI.create("string:///" + name), Kind.SOURCE);
            this.name = name;
            this.text = text;
        }

        @Override
        public String getName() {
            return name; // diagnostics then read "Problem.java:3: error: ..." as the command's do
        }

        @Override
        public CharSequence getCharContent(boolean ignoreEncodingErrors) {
            return text;
        }
    }

    static final class Output extends SimpleJavaFileObject {
        final String path;
        final ByteArrayOutputStream bytes = new ByteArrayOutputStream();

        Output(String path) {
            super(URI.create("mem:///" + path), Kind.CLASS);
            this.path = path;
        }

        @Override
        public OutputStream openOutputStream() {
            return bytes;
        }
    }

    static final class Memory extends ForwardingJavaFileManager<StandardJavaFileManager> {
        final List<Output> outputs = new ArrayList<>();

        Memory(StandardJavaFileManager std) {
            super(std);
        }

        @Override
        public JavaFileObject getJavaFileForOutput(JavaFileManager.Location location, String className,
                                                   JavaFileObject.Kind kind, FileObject sibling) throws IOException {
            if (location != StandardLocation.CLASS_OUTPUT || kind != JavaFileObject.Kind.CLASS) {
                throw new IOException("only class files are written, not " + location + " " + className);
            }
            Output o = new Output(className.replace('.', '/') + ".class");
            outputs.add(o);
            return o;
        }

        @Override
        public boolean hasLocation(JavaFileManager.Location location) {
            // No source path and no output directory to search: only the platform and the class path.
            if (location == StandardLocation.SOURCE_PATH || location == StandardLocation.CLASS_OUTPUT) {
                return location == StandardLocation.CLASS_OUTPUT;
            }
            return super.hasLocation(location);
        }

        @Override
        public Iterable<JavaFileObject> list(JavaFileManager.Location location, String packageName,
                                             java.util.Set<JavaFileObject.Kind> kinds, boolean recurse) throws IOException {
            if (location == StandardLocation.CLASS_OUTPUT || location == StandardLocation.SOURCE_PATH) {
                return Collections.emptyList();
            }
            return super.list(location, packageName, kinds, recurse);
        }
    }

    static String readString(DataInputStream in) throws IOException {
        byte[] b = new byte[in.readInt()];
        in.readFully(b);
        return new String(b, StandardCharsets.UTF_8);
    }

    static void writeBytes(DataOutputStream out, byte[] b) throws IOException {
        out.writeInt(b.length);
        out.write(b);
    }

    public static void main(String[] args) throws IOException {
        Locale.setDefault(Locale.ROOT);
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        if (javac == null) {
            System.err.println("no system Java compiler (a JRE without jdk.compiler)");
            System.exit(3);
        }
        StandardJavaFileManager std = javac.getStandardFileManager(null, Locale.ROOT, StandardCharsets.UTF_8);
        List<File> classPath = new ArrayList<>();
        for (String p : args) {
            classPath.add(new File(p));
        }
        std.setLocation(StandardLocation.CLASS_PATH, classPath);
        std.setLocation(StandardLocation.SOURCE_PATH, Collections.emptyList());
        DataInputStream in = new DataInputStream(new BufferedInputStream(System.in, 1 << 16));
        // The protocol owns file descriptor 1; anything that prints to System.out goes to stderr.
        DataOutputStream out = new DataOutputStream(new BufferedOutputStream(
                new java.io.FileOutputStream(java.io.FileDescriptor.out), 1 << 16));
        System.setOut(System.err);
        out.writeByte('R'); // ready: the supervisor starts timing compilations from here
        out.flush();
        while (true) {
            long id;
            try {
                id = in.readLong();
            } catch (EOFException e) {
                return;
            }
            String fileName = readString(in);
            String text = readString(in);
            Memory files = new Memory(std);
            StringWriter diagnostics = new StringWriter();
            byte[] status = {2};
            Runnable compile = () -> {
                try (PrintWriter w = new PrintWriter(diagnostics)) {
                    boolean ok = javac.getTask(w, files, null, OPTIONS, null,
                                               List.of(new Source(fileName, text))).call();
                    status[0] = (byte) (ok ? 0 : 1);
                } catch (Throwable t) { // a compiler crash, StackOverflowError, OutOfMemoryError...
                    status[0] = 2;
                    diagnostics.append(t.toString());
                }
            };
            // A quarter of the stack the javac command's main thread has: warm (compiled) frames
            // are smaller than a cold javac's interpreted ones, so a source that nests deep enough
            // to overflow the javac command's stack overflows here first, and is then compiled by
            // the javac command (status 2) rather than getting a verdict javac would not give.
            Thread t = new Thread(null, compile, "santa-javac", COMPILER_STACK);
            t.start();
            try {
                t.join();
            } catch (InterruptedException e) {
                status[0] = 2;
            }
            if (diagnostics.getBuffer().toString().contains("java.lang.StackOverflowError")) {
                status[0] = 2; // javac reports some overflows as a diagnostic, not by throwing
            }
            out.writeLong(id);
            out.writeByte(status[0]);
            writeBytes(out, diagnostics.toString().getBytes(StandardCharsets.UTF_8));
            List<Output> classes = status[0] == 0 ? files.outputs : List.of();
            out.writeInt(classes.size());
            for (Output o : classes) {
                writeBytes(out, o.path.getBytes(StandardCharsets.UTF_8));
                writeBytes(out, o.bytes.toByteArray());
            }
            out.flush();
        }
    }
}
