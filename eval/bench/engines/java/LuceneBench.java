/*
 * LuceneBench: Anserini impact search timed inside the JVM, for lsr's speed benchmark
 * (lsr.eval.bench.engines.lucene compiles and drives it; see that module for why).
 *
 * Why a program of our own instead of pyserini's SimpleImpactSearcher through pyjnius: timed from Python,
 * every query paid for the Python-to-Java conversion (a java.util.HashMap built entry by entry) and for
 * fetching each hit's stored id, and two warm-up queries left JIT compilation inside the timing. Here the
 * queries are loaded and built once, a warm-up runs whole passes over all of them until the pass time has
 * settled (see warmUp), and System.nanoTime brackets IndexSearcher.search alone.
 *
 * The query is the one SimpleImpactSearcher builds: Anserini's BagOfWordsQueryGenerator turns term -> weight
 * into a BooleanQuery of SHOULD clauses, each a BoostQuery(TermQuery(contents:term), weight), scored by
 * Anserini's ImpactSimilarity (impact x boost, summed). Two ways to collect the top k:
 *   ties=anserini  what SimpleImpactSearcher does: sort by score, then by the id string (a TopFieldCollector,
 *                  which scores every matching document);
 *   ties=lucene    IndexSearcher.search(query, k): Lucene's top-score collector with dynamic pruning
 *                  (MaxScore / block-max WAND), ties by internal doc id. The same scores, Lucene at its fastest.
 *
 * Protocol: one command per line on stdin, one answer line on stdout ("ok ..." or "error ..."); anything
 * the libraries print goes to stderr. Commands:
 *   load PATH                     queries, one a line: "term weight term weight ..." (an empty line: no terms)
 *   search K TERM W TERM W ...    one query, answered inline: "ok COUNT ROW SCORE ROW SCORE ..."
 *   latency K PATH                warm-up passes, then one timed single-thread pass; results to PATH
 *   throughput K THREADS PATH     the same with THREADS threads sharing the queries; answer has the seconds
 *   quit
 * The answer of latency and throughput: "ok SECONDS STABLE PASS_MS,PASS_MS,..." (SECONDS: the timed pass,
 * STABLE: 1 when the warm-up converged, PASS_MS: each warm-up pass). The result file (big-endian): int n;
 * long[n] wall nanoseconds per query; long[n] the searching thread's CPU nanoseconds per query; int[n] hit
 * counts; int[] rows of all hits; float[] their scores. The CPU time (ThreadMXBean, read just outside the
 * wall bracket) is what a query costs even where a busy machine takes the core away in mid-search.
 */

import io.anserini.index.Constants;
import io.anserini.search.query.BagOfWordsQueryGenerator;
import io.anserini.search.similarity.ImpactSimilarity;
import java.io.BufferedOutputStream;
import java.io.BufferedReader;
import java.io.DataOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.lucene.index.DirectoryReader;
import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.index.StoredFields;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.ScoreDoc;
import org.apache.lucene.search.Sort;
import org.apache.lucene.search.SortField;
import org.apache.lucene.search.TopDocs;
import org.apache.lucene.store.FSDirectory;

public final class LuceneBench {
  /** SimpleImpactSearcher's own tie-break (a private constant there). */
  private static final Sort BREAK_SCORE_TIES_BY_DOCID =
      new Sort(SortField.FIELD_SCORE, new SortField(Constants.ID, SortField.Type.STRING_VAL));
  private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();

  private interface Pass {
    void run() throws Exception;
  }

  private final DirectoryReader reader;
  private final IndexSearcher searcher;
  private final int[] rowOf; // Lucene doc id -> row number (lsr indexes row i under the id "i")
  private final boolean anseriniTies;
  private final int minPasses;
  private final int maxPasses;
  private final double tolerance;
  private final double minSeconds;
  private final double maxSeconds;
  private final BagOfWordsQueryGenerator generator = new BagOfWordsQueryGenerator();
  private Query[] queries = new Query[0];

  private LuceneBench(Path index, boolean anseriniTies, int minPasses, int maxPasses, double tolerance,
      double minSeconds, double maxSeconds) throws IOException {
    this.reader = DirectoryReader.open(FSDirectory.open(index));
    this.searcher = new IndexSearcher(reader);
    searcher.setSimilarity(new ImpactSimilarity());
    // Warm-up and timed passes repeat the same queries: nothing may be answered from a cache.
    searcher.setQueryCache(null);
    this.anseriniTies = anseriniTies;
    this.minPasses = minPasses;
    this.maxPasses = maxPasses;
    this.tolerance = tolerance;
    this.minSeconds = minSeconds;
    this.maxSeconds = maxSeconds;
    this.rowOf = new int[reader.maxDoc()];
    Set<String> idOnly = Set.of(Constants.ID);
    for (LeafReaderContext leaf : reader.leaves()) {
      StoredFields fields = leaf.reader().storedFields();
      for (int doc = 0; doc < leaf.reader().maxDoc(); doc++) {
        rowOf[leaf.docBase + doc] = Integer.parseInt(fields.document(doc, idOnly).get(Constants.ID));
      }
    }
  }

  private Query parse(String[] fields, int from) {
    Map<String, Float> weights = new LinkedHashMap<>();
    for (int i = from; i + 1 < fields.length; i += 2) {
      weights.put(fields[i], Float.parseFloat(fields[i + 1]));
    }
    return generator.buildQuery(Constants.CONTENTS, weights);
  }

  private TopDocs search(Query query, int k) throws IOException {
    return anseriniTies ? searcher.search(query, k, BREAK_SCORE_TIES_BY_DOCID, true) : searcher.search(query, k);
  }

  private int load(Path path) throws IOException {
    List<Query> loaded = new ArrayList<>();
    for (String line : Files.readAllLines(path, StandardCharsets.UTF_8)) {
      String trimmed = line.trim();
      loaded.add(parse(trimmed.isEmpty() ? new String[0] : trimmed.split(" "), 0));
    }
    queries = loaded.toArray(new Query[0]);
    return queries.length;
  }

  private String searchOne(String[] fields, int k) throws IOException {
    TopDocs hits = search(parse(fields, 2), k);
    StringBuilder out = new StringBuilder().append(hits.scoreDocs.length);
    for (ScoreDoc hit : hits.scoreDocs) {
      out.append(' ').append(rowOf[hit.doc]).append(' ').append(hit.score);
    }
    return out.toString();
  }

  /**
   * Whole passes until the last two each take within tolerance of the fastest pass so far, after at least
   * minPasses passes and minSeconds (so that a small query set still runs long enough for the JIT); at most
   * maxPasses passes or maxSeconds. Near the fastest, not near the previous pass: on a busy machine two slow
   * passes can agree by chance. Answers "STABLE MS,MS,...", STABLE 1 when the criterion was met.
   */
  private String warmUp(Pass pass) throws Exception {
    List<String> times = new ArrayList<>();
    long started = System.nanoTime();
    double fastest = Double.MAX_VALUE;
    double previous = Double.MAX_VALUE;
    boolean stable = false;
    for (int p = 0; p < maxPasses; p++) {
      long t0 = System.nanoTime();
      pass.run();
      double ms = (System.nanoTime() - t0) / 1e6;
      times.add(String.format("%.3f", ms));
      fastest = Math.min(fastest, ms);
      double limit = (1 + tolerance) * fastest;
      double elapsed = (System.nanoTime() - started) / 1e9;
      stable = p + 1 >= minPasses && elapsed >= minSeconds && ms <= limit && previous <= limit;
      previous = ms;
      if (stable || elapsed > maxSeconds) {
        break;
      }
    }
    return (stable ? "1 " : "0 ") + String.join(",", times);
  }

  private String latency(int k, Path out) throws Exception {
    TopDocs[] hits = new TopDocs[queries.length];
    long[] nanos = new long[queries.length];
    long[] cpu = new long[queries.length];
    String warm = warmUp(() -> {
      for (Query query : queries) {
        search(query, k);
      }
    });
    long started = System.nanoTime();
    for (int i = 0; i < queries.length; i++) {
      long c0 = THREADS.getCurrentThreadCpuTime();
      long t0 = System.nanoTime();
      hits[i] = search(queries[i], k);
      nanos[i] = System.nanoTime() - t0;
      cpu[i] = THREADS.getCurrentThreadCpuTime() - c0;
    }
    double seconds = (System.nanoTime() - started) / 1e9;
    write(out, nanos, cpu, hits);
    return seconds + " " + warm;
  }

  private String throughput(int k, int threads, Path out) throws Exception {
    TopDocs[] hits = new TopDocs[queries.length];
    long[] nanos = new long[queries.length];
    long[] cpu = new long[queries.length];
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      // Each worker takes the next query until none is left: the pool stays busy without one task per query.
      Pass pass = () -> {
        AtomicInteger next = new AtomicInteger();
        List<Future<?>> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
          workers.add(pool.submit(() -> {
            for (int i = next.getAndIncrement(); i < queries.length; i = next.getAndIncrement()) {
              long c0 = THREADS.getCurrentThreadCpuTime();
              long t0 = System.nanoTime();
              hits[i] = search(queries[i], k);
              nanos[i] = System.nanoTime() - t0;
              cpu[i] = THREADS.getCurrentThreadCpuTime() - c0;
            }
            return null;
          }));
        }
        for (Future<?> worker : workers) {
          worker.get();
        }
      };
      String warm = warmUp(pass);
      long started = System.nanoTime();
      pass.run();
      double seconds = (System.nanoTime() - started) / 1e9;
      write(out, nanos, cpu, hits);
      return seconds + " " + warm;
    } finally {
      pool.shutdown();
    }
  }

  private void write(Path out, long[] nanos, long[] cpu, TopDocs[] hits) throws IOException {
    try (DataOutputStream data =
        new DataOutputStream(new BufferedOutputStream(Files.newOutputStream(out), 1 << 20))) {
      data.writeInt(hits.length);
      for (long t : nanos) {
        data.writeLong(t);
      }
      for (long t : cpu) {
        data.writeLong(t);
      }
      for (TopDocs found : hits) {
        data.writeInt(found.scoreDocs.length);
      }
      for (TopDocs found : hits) {
        for (ScoreDoc hit : found.scoreDocs) {
          data.writeInt(rowOf[hit.doc]);
        }
      }
      for (TopDocs found : hits) {
        for (ScoreDoc hit : found.scoreDocs) {
          data.writeFloat(hit.score);
        }
      }
    }
  }

  /** Arguments: INDEX TIES(anserini|lucene) MIN_PASSES MAX_PASSES TOLERANCE MIN_SECONDS MAX_SECONDS (warm-up). */
  public static void main(String[] args) throws Exception {
    PrintStream protocol = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
    System.setOut(System.err); // library output must not interleave with the answers
    if (!args[1].equals("anserini") && !args[1].equals("lucene")) {
      throw new IllegalArgumentException("ties must be anserini or lucene, not " + args[1]);
    }
    LuceneBench bench = new LuceneBench(Paths.get(args[0]), args[1].equals("anserini"), Integer.parseInt(args[2]),
        Integer.parseInt(args[3]), Double.parseDouble(args[4]), Double.parseDouble(args[5]),
        Double.parseDouble(args[6]));
    protocol.println("ready " + bench.reader.maxDoc() + " " + bench.reader.leaves().size());
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    for (String line = in.readLine(); line != null; line = in.readLine()) {
      String command = line.split(" ", 2)[0];
      try {
        switch (command) {
          case "load" -> protocol.println("ok " + bench.load(Paths.get(line.split(" ", 2)[1])));
          case "search" -> {
            String[] fields = line.trim().split(" ");
            protocol.println("ok " + bench.searchOne(fields, Integer.parseInt(fields[1])));
          }
          case "latency" -> {
            String[] fields = line.split(" ", 3);
            protocol.println("ok " + bench.latency(Integer.parseInt(fields[1]), Paths.get(fields[2])));
          }
          case "throughput" -> {
            String[] fields = line.split(" ", 4);
            int threads = Integer.parseInt(fields[2]);
            protocol.println("ok " + bench.throughput(Integer.parseInt(fields[1]), threads, Paths.get(fields[3])));
          }
          case "quit" -> {
            bench.reader.close();
            return;
          }
          default -> protocol.println("error unknown command: " + command);
        }
      } catch (Exception e) {
        protocol.println("error " + String.valueOf(e).replace('\n', ' '));
      }
    }
    bench.reader.close();
  }
}
